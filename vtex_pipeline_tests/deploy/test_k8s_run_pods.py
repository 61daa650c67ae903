"""One code location, many accounts, a ReadWriteOnce volume per account (deploy/k8s/), checked without a
cluster: the run pod is built by dagster-k8s's own code from what the daemon would hand it.

- every job of every account in deploy/k8s/integrations/accounts.yaml, as `build_definitions` builds it,
  carries the `dagster-k8s/config` run tag (through the job snapshot the daemon reads); the run pod
  `K8sRunLauncher` (configured as the chart renders it from values.yaml, with the code location's
  `includeConfigInLaunchedRuns` context) builds from it mounts exactly that account's claim, at a path
  holding its DuckDB file, and no other account's claim; a run without the tag mounts no claim;
- the DuckDB resource of an account with a claim refuses to open its file when the mount path is not a
  mounted volume (it creates nothing), and opens it on a real mount point (/dev/shm here);
- the loader rejects two accounts sharing a claim (ReadWriteOnce per account) and a duckdb_path outside
  the mount path.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from vtex_pipeline.config import ConfigError, IntegrationConfig, load_integrations
from vtex_pipeline.resources import duckdb_resource
from vtex_pipeline.schedules import K8S_CONFIG_TAG, k8s_run_tags
from vtex_pipeline_tests.deploy.test_k8s_values import (
    K8S,
    RELEASE_FULLNAME,
    RELEASE_NAMESPACE,
    _values,
    render_run_launcher,
)

ACCOUNTS = K8S / "integrations" / "accounts.yaml"
dagster_k8s = pytest.importorskip("dagster_k8s", reason="dagster-k8s is in the dev extra")


def _configs() -> list[IntegrationConfig]:
    return load_integrations({"VTEX_PIPELINE_INTEGRATIONS": str(ACCOUNTS), "VTEX_PIPELINE_HOME": "/data"})


def _deployment() -> dict[str, Any]:
    """The code location serving deploy/k8s/integrations/accounts.yaml."""
    deps = _values()["dagster-user-deployments"]["deployments"]
    return next(d for d in deps if any(v.get("configMap", {}).get("name") == "vtex-integrations-accounts"
                                       for v in d["volumes"]))  # fmt: skip


def render_container_context(deployment: dict[str, Any]) -> dict[str, Any]:
    """What the chart's `dagsterUserDeployments.k8sContainerContext` helper puts in the code location's
    origin when `includeConfigInLaunchedRuns` is enabled (the run inherits it)."""
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"{RELEASE_FULLNAME}-{deployment['name']}-user-env"],
        "namespace": RELEASE_NAMESPACE,
        "service_account_name": f"{RELEASE_FULLNAME}-user-deployments",
    }
    for key, out in (("volumeMounts", "volume_mounts"), ("volumes", "volumes"), ("resources", "resources")):
        if deployment.get(key):
            k8s[out] = deployment[key]
    if isinstance(deployment.get("env"), list):
        k8s["env"] = deployment["env"]
    return {"k8s": k8s}


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory):
    """K8sRunLauncher with the chart-rendered config; a kubeconfig naming an unreachable cluster stands in
    for the in-cluster one (building a Job manifest talks to no API server)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1", "kind": "Config", "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "test", "user": {}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    config = dict(render_run_launcher(_values())["config"])
    config.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    return dagster_k8s.K8sRunLauncher(**config)


def run_pod_manifest(launcher, job_name: str, tags: dict[str, str]) -> dict[str, Any]:
    """The Kubernetes Job `K8sRunLauncher.launch_run` would create for a run of `job_name` with `tags`
    (its `_launch_k8s_job_with_args`, up to the API call), as the API server receives it."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id
    from kubernetes.client import ApiClient

    dep = _deployment()
    origin = JobPythonOrigin(
        job_name,
        RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer("vtex_pipeline.definitions", "defs", None),
            container_image=f"{dep['image']['repository']}:{dep['image']['tag']}",
            container_context=render_container_context(dep),
        ),
    )
    run = DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()), tags=tags, job_code_origin=origin)
    context = launcher.get_container_context_for_run(run)
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=origin.repository_origin.container_image,
                                              run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=get_job_name_from_run_id(run.run_id),
        pod_name=get_job_name_from_run_id(run.run_id),
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": job_name, "dagster/run-id": run.run_id},
    )  # fmt: skip
    return ApiClient().sanitize_for_serialization(job)


def _claims(pod_spec: dict[str, Any]) -> dict[str, str]:
    """volume name -> claim name of the pod's PersistentVolumeClaim volumes."""
    return {v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod_spec.get("volumes") or [] if v.get("persistentVolumeClaim")}  # fmt: skip


def _daemon_run_tags(defs: dg.Definitions, job_name: str, cfg: IntegrationConfig) -> dict[str, str]:
    """The tags the daemon gives a run of `job_name`: the job snapshot's run tags (what crosses from the
    code server), then the schedule's request tags, as dagster/_scheduler/scheduler.py merges them."""
    from dagster._core.snap import JobSnap
    from dagster._serdes import deserialize_value, serialize_value

    job = defs.resolve_job_def(job_name)
    snap = deserialize_value(serialize_value(JobSnap.from_job_def(job)), JobSnap)
    tags = dict(snap.run_tags or {})
    if job_name.endswith("_raw_sync"):
        schedule = defs.resolve_schedule_def(f"{cfg.name}_raw_sync_every_4h")
        # both as context managers: a schedule context left open keeps the instance's definitions-state
        # storage as the thread's current one, and every later repository built in this process fails
        with (
            dg.instance_for_test() as instance,
            dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime(2026, 11, 27, 8, 10, tzinfo=UTC)
            ) as context,
        ):
            requests = schedule.evaluate_tick(context).run_requests or []
        assert requests, f"{cfg.name}: the schedule requested no run"
        tags.update(requests[0].tags)
    return tags


def test_every_accounts_jobs_mount_exactly_its_claim_in_the_run_pod(launcher) -> None:
    from vtex_pipeline.definitions import build_definitions

    configs = _configs()
    assert len(configs) >= 2 and all(c.k8s_volume_claim for c in configs)
    defs = build_definitions(configs)
    pvcs = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all((K8S / "pvc.yaml").read_text(encoding="utf-8"))
    }
    all_claims = {c.k8s_volume_claim for c in configs}
    for cfg in configs:
        assert pvcs[cfg.k8s_volume_claim]["spec"]["accessModes"] == ["ReadWriteOnce"], cfg.name
        for job_name in (f"{cfg.name}_raw_sync", f"{cfg.name}_profile_export"):
            tags = _daemon_run_tags(defs, job_name, cfg)
            assert json.loads(tags[K8S_CONFIG_TAG]) == json.loads(k8s_run_tags(cfg)[K8S_CONFIG_TAG])
            manifest = run_pod_manifest(launcher, job_name, tags)
            pod = manifest["spec"]["template"]["spec"]
            claims = _claims(pod)
            assert sorted(claims.values()) == [cfg.k8s_volume_claim], f"{job_name}: {claims}"
            (container,) = pod["containers"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert len(mounts) == len(container["volumeMounts"]), f"{job_name}: a path mounted twice"
            (volume,) = claims
            (path,) = [p for p, name in mounts.items() if name == volume]
            assert path == cfg.k8s_mount_path
            assert Path(cfg.duckdb_path).parent == Path(path) or Path(cfg.duckdb_path).is_relative_to(path)
            others = all_claims - {cfg.k8s_volume_claim}
            assert not any(o in json.dumps(manifest) for o in others), f"{job_name} names another claim"
            # what the location hands every run is still there: its image, env and integrations file
            assert container["image"] == "registry.example.com/vtex-pipeline:0.1.0"
            assert "/etc/vtex-pipeline" in mounts
            env = {e["name"] for e in container.get("env") or []}
            assert {cfg.app_key_env, cfg.app_token_env, "VTEX_PIPELINE_INTEGRATIONS"} <= env
            # the pods of one claim prefer one node (a ReadWriteOnce volume attaches to one node at a time)
            labels = manifest["spec"]["template"]["metadata"]["labels"]
            assert labels["vtex-pipeline/claim"] == cfg.k8s_volume_claim
            (term,) = pod["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
            assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
                "vtex-pipeline/claim": cfg.k8s_volume_claim
            }
            assert pod["securityContext"]["fsGroup"] == 1000  # the image's user can write a fresh volume
            assert manifest["spec"]["backoffLimit"] == 0  # the launcher's runK8sConfig, merged with the tag


def test_a_run_without_the_tag_mounts_no_claim(launcher) -> None:
    """An ad-hoc materialization (implicit asset job, no job tags): no volume; the resource refuses."""
    manifest = run_pod_manifest(launcher, "__ASSET_JOB", {})
    assert _claims(manifest["spec"]["template"]["spec"]) == {}


def test_the_tag_is_json_and_holds_no_secret() -> None:
    for cfg in _configs():
        tag = k8s_run_tags(cfg)[K8S_CONFIG_TAG]
        from dagster_k8s.job import get_user_defined_k8s_config

        parsed = get_user_defined_k8s_config({K8S_CONFIG_TAG: tag})  # dagster-k8s's own schema check
        assert parsed.pod_spec_config["volumes"][0]["persistent_volume_claim"]["claim_name"] == (
            cfg.k8s_volume_claim
        )
        for var in (cfg.app_key_env, cfg.app_token_env):
            assert var not in tag
    assert k8s_run_tags(IntegrationConfig(name="plain")) == {}


# ------------------------------------------------------------------------ the DuckDB resource's guard
def _cfg(tmp_path: Path, **kw: Any) -> IntegrationConfig:
    return IntegrationConfig(name="brand_a", duckdb_path=str(tmp_path / "vol" / "brand_a.duckdb"), **kw)


def test_the_resource_refuses_a_mount_path_that_is_not_mounted(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, k8s_volume_claim="vtex-data-brand-a")
    with pytest.raises(dg.Failure) as missing, duckdb_resource(cfg).get_connection():
        pass
    message = missing.value.description or ""
    for part in ("brand_a", str(tmp_path / "vol"), "does not exist", "vtex-data-brand-a", "brand_a_raw_sync",
                 "dagster-k8s/config"):  # fmt: skip
        assert part in message, (part, message)
    assert not (tmp_path / "vol").exists(), "the guard created the directory"
    # a folder that exists but is not a volume (the image's /data): refused too, nothing written
    (tmp_path / "vol").mkdir()
    with pytest.raises(dg.Failure, match="is not a mounted volume"), duckdb_resource(cfg).get_connection():
        pass
    assert list((tmp_path / "vol").iterdir()) == []


def test_the_resource_opens_the_file_on_a_mounted_volume() -> None:
    if not os.path.ismount("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable mount point at /dev/shm")
    path = Path("/dev/shm") / f"vtex-test-{uuid.uuid4().hex}.duckdb"
    cfg = IntegrationConfig(name="brand_a", duckdb_path=str(path), k8s_volume_claim="vtex-data-brand-a")
    assert cfg.k8s_mount_path == "/dev/shm"
    try:
        with duckdb_resource(cfg).get_connection() as conn:
            assert conn.execute("SELECT 42").fetchone() == (42,)
        assert path.exists()
    finally:
        for p in (path, Path(f"{path}.wal")):
            p.unlink(missing_ok=True)


def test_without_a_claim_the_resource_is_unchanged(tmp_path: Path) -> None:
    """No claim: the account's plain resource (dagster-duckdb's, naming a process that holds the file),
    no mount check; the file is created in a plain folder."""
    from vtex_pipeline.resources import AccountDuckDBResource

    (tmp_path / "vol").mkdir()
    cfg = _cfg(tmp_path)
    resource = duckdb_resource(cfg)
    assert type(resource) is AccountDuckDBResource
    with resource.get_connection() as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert (tmp_path / "vol" / "brand_a.duckdb").exists()


# ----------------------------------------------------------------------------------------- the loader
def _write(tmp_path: Path, items: list[dict[str, Any]]) -> dict[str, str]:
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": items}), encoding="utf-8")
    return {"VTEX_PIPELINE_INTEGRATIONS": str(path), "VTEX_PIPELINE_HOME": str(tmp_path)}


def test_the_loader_rejects_a_claim_shared_by_two_accounts(tmp_path: Path) -> None:
    env = _write(tmp_path, [
        {"name": "brand_a", "duckdb_path": "/data/brand_a/a.duckdb", "k8s_volume_claim": "vtex-data"},
        {"name": "brand_b", "duckdb_path": "/data/brand_b/b.duckdb", "k8s_volume_claim": "vtex-data"},
    ])  # fmt: skip
    with pytest.raises(ConfigError, match=r"own k8s_volume_claim.*ReadWriteOnce.*shared: vtex-data"):
        load_integrations(env)


def test_the_loader_rejects_a_duckdb_path_outside_the_mount_path(tmp_path: Path) -> None:
    env = _write(tmp_path, [{"name": "brand_a", "duckdb_path": "/data/brand_a.duckdb",
                             "k8s_volume_claim": "vtex-data-brand-a", "k8s_mount_path": "/data/brand_a"}])  # fmt: skip
    with pytest.raises(ConfigError, match=r"outside k8s_mount_path /data/brand_a.*vtex-data-brand-a"):
        load_integrations(env)
    for bad, match in (
        ({"k8s_mount_path": "/data/brand_a"}, "without k8s_volume_claim"),
        ({"k8s_volume_claim": "Vtex_Data"}, "lowercase letters, digits and -"),
        ({"k8s_volume_claim": "v" * 64}, "at most 63"),
        ({"k8s_volume_claim": "v", "k8s_mount_path": "data"}, "absolute"),
        ({"k8s_volume_claim": "v", "duckdb_path": "/a.duckdb"}, "must not be /"),
        (
            {"k8s_volume_claim": "v", "duckdb_path": "/data/brand_a", "k8s_mount_path": "/data/brand_a"},
            "outside",
        ),
    ):
        item = {"name": "brand_a", "duckdb_path": "/data/brand_a/a.duckdb", **bad}
        with pytest.raises(ConfigError, match=match):
            load_integrations(_write(tmp_path, [item]))
    ok = load_integrations(_write(tmp_path, [
        {"name": "brand_a", "duckdb_path": "/data/brand_a/a.duckdb", "k8s_volume_claim": "vtex-data-brand-a"},
        {"name": "brand_b", "duckdb_path": "/data/b/b.duckdb", "k8s_volume_claim": "vtex-data-brand-b",
         "k8s_mount_path": "/data/b/"},
    ]))  # fmt: skip
    assert [c.k8s_mount_path for c in ok] == ["/data/brand_a", "/data/b"]
