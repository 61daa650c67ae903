"""deploy/k8s/values.yaml for the official Dagster Helm chart, checked without a cluster or helm:

- its keys are the chart's (a vendored subset of the chart's values.schema.json, fixtures/);
- the instance the chart renders from it (run launcher, run coordinator, pools, run limit, run
  monitoring, telemetry; rendered as the chart's templates/helpers/instance/*.tpl do) passes Dagster's
  own instance-config validation, with `pools.default_limit: 1` and no run-coordinator run limit;
- the run launcher block passes `dagster_k8s.K8sRunLauncher`'s config schema (dagster-k8s is in the
  `dev` extra; without it, or DAGSTER_K8S_PYTHON naming a python that has it, the check skips locally
  and fails under CI);
- every code location: its integrations file loads, every variable the pipeline reads for its accounts
  (app key/token, icomm key, VTEX_PIPELINE_HOME, VTEX_PIPELINE_INTEGRATIONS, the range-run setting) is
  in its env and runs inherit it (`includeConfigInLaunchedRuns`); the code server mounts no DuckDB
  volume; every account names its own ReadWriteOnce claim of pvc.yaml (`k8s_volume_claim`, mounted in
  its run pods by its jobs' `dagster-k8s/config` tag: test_k8s_run_pods.py builds those pods).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vtex_pipeline_tests.postgres import running_in_ci

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
VALUES = K8S / "values.yaml"
SCHEMA = Path(__file__).with_name("fixtures") / "dagster_chart_values_subset.schema.json"
RELEASE_NAMESPACE = "dagster"
RELEASE_FULLNAME = "dagster"


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {_snake(k): v for k, v in d.items()}


def render_run_launcher(values: dict[str, Any]) -> dict[str, Any]:
    """`dagsterYaml.runLauncher.k8s` of the chart (helpers/instance/_run-launcher.tpl)."""
    c = values["runLauncher"]["config"]["k8sRunLauncher"]
    cfg: dict[str, Any] = {
        "load_incluster_config": c["loadInclusterConfig"],
        "job_namespace": c.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": c["imagePullPolicy"],
        "service_account_name": f"{RELEASE_FULLNAME}",
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{RELEASE_FULLNAME}-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
    }
    if c.get("kubeconfigFile"):
        cfg["kubeconfig_file"] = c["kubeconfigFile"]
    if c.get("envConfigMaps"):
        cfg["env_config_maps"] = [m["name"] for m in c["envConfigMaps"] if "name" in m]
    if c.get("envSecrets"):
        cfg["env_secrets"] = [s["name"] for s in c["envSecrets"] if "name" in s]
    for key in (
        "envVars",
        "volumeMounts",
        "volumes",
        "labels",
        "resources",
        "schedulerName",
        "securityContext",
    ):
        if c.get(key):
            cfg[_snake(key)] = c[key]
    if c.get("failPodOnRunFailure"):
        cfg["fail_pod_on_run_failure"] = True
    if c.get("runK8sConfig"):
        cfg["run_k8s_config"] = {_snake(k): v for k, v in c["runK8sConfig"].items() if v}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": cfg}


def render_instance(values: dict[str, Any], storage: dict[str, Any]) -> dict[str, Any]:
    """The instance sections the chart's configmap-instance.yaml renders from these values."""
    daemon = values["dagsterDaemon"]
    qrc = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    pools = values["concurrency"]["pools"]
    runs = values["concurrency"]["runs"]
    return {
        "storage": storage,
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {_snake(k): v for k, v in qrc.items() if v is not None},
        },
        "run_launcher": render_run_launcher(values),
        "concurrency": {
            "pools": {_snake(k): v for k, v in pools.items() if v is not None},
            "runs": {_snake(k): v for k, v in runs.items() if v not in (None, [])},
        },
        "run_monitoring": _snake_keys(daemon["runMonitoring"]),
        "run_retries": {
            "enabled": daemon["runRetries"]["enabled"],
            "max_retries": daemon["runRetries"]["maxRetries"],
            "retry_on_asset_or_op_failure": daemon["runRetries"]["retryOnAssetOrOpFailure"],
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def _env_names(deployment: dict[str, Any]) -> dict[str, Any]:
    env = deployment.get("env") or []
    if isinstance(env, dict):
        return dict(env)
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def test_values_use_the_charts_keys() -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(_values(), schema)


def test_a_misspelt_key_is_caught_by_the_vendored_schema() -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    bad = _values()
    bad["runLauncher"]["config"]["k8sRunLauncher"]["volumeMount"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = _values()
    bad["concurrency"]["pools"]["default_limit"] = 1  # snake case is dagster.yaml's, not the chart's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_the_rendered_instance_passes_dagsters_validation(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    values = _values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["telemetry"]["enabled"] is False
    pg = values["postgresql"]
    storage = {
        "postgres": {
            "postgres_db": {
                "hostname": "dagster-postgresql", "port": pg["service"]["port"], "username": pg["postgresqlUsername"],
                "password": {"env": "DAGSTER_PG_PASSWORD"}, "db_name": pg["postgresqlDatabase"],
            }
        }
    }  # fmt: skip
    instance = render_instance(values, storage)
    # the launcher is checked on its own below, against dagster-k8s's schema (the `k8s` / `dev` extras)
    instance["run_launcher"] = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance), encoding="utf-8")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1  # one writer per DuckDB file
    assert config["concurrency"]["pools"]["granularity"] == "op"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert "max_concurrent_runs" not in config["run_coordinator"]["config"]  # the chart fails on both
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    # the local and Compose instances agree on the pools (deploy/dagster.yaml)
    compose = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text(encoding="utf-8"))
    assert compose["concurrency"]["pools"] == config["concurrency"]["pools"]


_VALIDATE_LAUNCHER = """
import json, sys
from dagster._config import process_config
from dagster_k8s import K8sRunLauncher
result = process_config(K8sRunLauncher.config_type(), json.loads(sys.stdin.read()))
print(json.dumps({"ok": result.success, "errors": [e.message for e in (result.errors or [])]}))
"""


def _k8s_python() -> str | None:
    try:
        import dagster_k8s  # noqa: F401
    except ImportError:
        other = os.environ.get("DAGSTER_K8S_PYTHON")
        return other if other and Path(other).exists() else None
    return sys.executable


def test_run_launcher_passes_k8s_run_launchers_config_schema() -> None:
    python = _k8s_python()
    if python is None:
        if running_in_ci():
            pytest.fail("dagster-k8s is in the dev extra: `pip install -e '.[dev]'`")
        pytest.skip("dagster-k8s not importable; set DAGSTER_K8S_PYTHON to a python that has it")
    launcher = render_run_launcher(_values())
    assert launcher["class"] == "K8sRunLauncher"

    def check(config: dict[str, Any]) -> dict[str, Any]:
        out = subprocess.run(
            [python, "-c", _VALIDATE_LAUNCHER], input=json.dumps(config), capture_output=True, text=True,
            timeout=120, check=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = check(launcher["config"])
    assert result["ok"], result["errors"]
    broken = dict(launcher["config"], run_k8s_config={"pod_spec": {}})  # the check does reject
    assert not check(broken)["ok"]


def _integrations_file(deployment: dict[str, Any]) -> Path:
    """The example integrations file behind the deployment's ConfigMap `vtex-integrations-<x>`."""
    cm = next(v["configMap"]["name"] for v in deployment["volumes"] if "configMap" in v)
    assert cm.startswith("vtex-integrations-"), cm
    return K8S / "integrations" / (cm.removeprefix("vtex-integrations-").replace("-", "_") + ".yaml")


def test_every_code_location_has_its_variables_and_accounts_their_own_claim() -> None:
    from vtex_pipeline.config import load_integrations

    values = _values()
    deployments = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] and deployments
    pvcs = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all((K8S / "pvc.yaml").read_text(encoding="utf-8"))
    }
    seen_claims, seen_accounts = set(), set()
    for dep in deployments:
        name = dep["name"]
        assert dep["codeServerArgs"][:2] == ["-m", "vtex_pipeline.definitions"], name
        assert dep["includeConfigInLaunchedRuns"]["enabled"] is True, (
            f"{name}: runs would lose env and the integrations file"
        )
        assert dep["image"]["tag"] not in ("", "latest"), (
            f"{name}: runs must use the code server's exact image"
        )
        env = _env_names(dep)
        assert env.get("VTEX_PIPELINE_HOME") == "/data", name
        assert env.get("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS") == "true", name
        mounts = {m["mountPath"]: m["name"] for m in dep["volumeMounts"]}
        # a ReadWriteOnce claim on the long-lived code server would hold it on the server's node (and,
        # through includeConfigInLaunchedRuns, put every account's claim in every run pod)
        assert not any("persistentVolumeClaim" in v for v in dep["volumes"]), f"{name}: mounts a claim"
        integrations_path = env["VTEX_PIPELINE_INTEGRATIONS"]
        assert str(Path(integrations_path).parent) in mounts, f"{name}: {integrations_path} is not mounted"

        local = _integrations_file(dep)
        configs = load_integrations({"VTEX_PIPELINE_INTEGRATIONS": str(local), "VTEX_PIPELINE_HOME": "/data"})
        assert len(configs) >= 2, f"{name}: the example serves several accounts from one location"
        for cfg in configs:
            needed = {cfg.app_key_env, cfg.app_token_env}
            if cfg.icomm is not None:
                needed.add(cfg.icomm.api_key_env)
            missing = sorted(needed - set(env))
            assert not missing, f"{name}: account {cfg.name} reads {missing}, not in the deployment's env"
            for var in needed:  # secrets come from Secrets, never as literals in the values file
                assert isinstance(env[var], dict) and "secretKeyRef" in env[var], f"{name}: {var}"
            claim = cfg.k8s_volume_claim
            assert claim in pvcs, f"{cfg.name}: PVC {claim} is not in deploy/k8s/pvc.yaml"
            assert pvcs[claim]["spec"]["accessModes"] == ["ReadWriteOnce"], claim
            assert claim not in seen_claims, f"{claim} is the claim of two accounts"
            seen_claims.add(claim)
            assert Path(cfg.duckdb_path).is_relative_to(cfg.k8s_mount_path), cfg.name
            assert Path(cfg.k8s_mount_path).is_relative_to("/data") and cfg.k8s_mount_path not in mounts
            assert cfg.name not in seen_accounts, f"account {cfg.name} is in two code locations"
            seen_accounts.add(cfg.name)
    assert seen_claims == set(pvcs), f"claims no account uses: {sorted(set(pvcs) - seen_claims)}"


def test_no_secret_in_the_values_file() -> None:
    text = VALUES.read_text(encoding="utf-8")
    for line in text.splitlines():
        if (
            re.search(r"(TOKEN|KEY|PASSWORD)\b.*:\s*[\"']?[A-Za-z0-9]{12,}", line)
            and "secretKeyRef" not in line
        ):
            pytest.fail(f"looks like a literal secret: {line.strip()}")
