"""deploy/: the instance config passes Dagster's own validation and builds a working instance on a real
PostgreSQL; the compose file wires services, volumes and environment as documented; the image installs
the project's wheel (never editable), and that wheel loads the definitions outside the checkout.

`docker compose config` is not used: the machines this runs on have no compose plugin and no daemon,
so the compose file is read with PyYAML (anchors and merge keys resolved, as compose does).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vtex_pipeline_tests.postgres import running_in_ci

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DAGSTER_SERVICES = ("code", "webserver", "daemon")
PG_ENV = {
    "DAGSTER_POSTGRES_HOST": "127.0.0.1",
    "DAGSTER_POSTGRES_PORT": "5432",
    "DAGSTER_POSTGRES_USER": "dagster",
    "DAGSTER_POSTGRES_PASSWORD": "secret-for-validation",
    "DAGSTER_POSTGRES_DB": "dagster",
}
SECRETS = ("VTEX_APP_KEY", "VTEX_APP_TOKEN", "ICOMM_API_KEY", "DAGSTER_POSTGRES_PASSWORD")


def _yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def _env_refs(node: Any) -> set[str]:
    """Every `{env: VAR}` in a Dagster config document."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        return set().union(*(_env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node)) if node else set()
    return set()


def _env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """container path -> named volume (or host path)."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source"), v["target"]
        out[target] = source
    return out


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or service.get("entrypoint") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


# ------------------------------------------------------------------------------------ dagster.yaml
def test_dagster_yaml_passes_dagsters_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    pg = config["storage"]["postgres"]["postgres_db"]  # validated; `{env: ...}` resolved on use
    assert {k: pg[k] for k in ("hostname", "port", "username", "password", "db_name")} == {
        "hostname": {"env": "DAGSTER_POSTGRES_HOST"}, "port": {"env": "DAGSTER_POSTGRES_PORT"},
        "username": {"env": "DAGSTER_POSTGRES_USER"}, "password": {"env": "DAGSTER_POSTGRES_PASSWORD"},
        "db_name": {"env": "DAGSTER_POSTGRES_DB"},
    }  # fmt: skip
    assert pg["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert config["run_launcher"] == {
        "module": "vtex_pipeline.launcher",
        "class": "MonitoredRunLauncher",
        "config": {"stale_after_seconds": 120},
    }
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    # a dead worker's heartbeat goes stale, the next poll fails the run, its slot is freed after that:
    # inside 5 minutes
    stale = config["run_launcher"]["config"]["stale_after_seconds"]
    assert (
        stale + 2 * monitoring["poll_interval_seconds"] + monitoring["free_slots_after_run_end_seconds"]
        <= 240
    )
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert config["telemetry"] == {"enabled": False}
    # every setting that differs per deployment comes from the environment, secrets included
    raw = _yaml("dagster.yaml")
    assert _env_refs(raw) == set(PG_ENV)


def test_dagster_yaml_builds_an_instance_on_postgres(
    postgres_cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real thing: deploy/dagster.yaml as DAGSTER_HOME's config against a live PostgreSQL 15."""
    import dagster as dg
    from dagster._core.run_coordinator import QueuedRunCoordinator

    db = postgres_cluster.create_database("deploy_config")
    for k, v in postgres_cluster.env(db).items():
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 30
        assert not instance.telemetry_enabled
        assert type(instance.run_launcher).__name__ == "MonitoredRunLauncher"
        assert instance.run_launcher.supports_check_run_worker_health
        # the storage works: a run written by this instance is read back through PostgreSQL
        run = instance.create_run_for_job(dg.GraphDefinition("probe").to_job(), run_id=None)
        assert instance.get_run_by_id(run.run_id) is not None


# ---------------------------------------------------------------------------------- docker-compose
def test_compose_services_volumes_and_environment() -> None:
    compose = _yaml("docker-compose.yml")
    services = compose["services"]
    assert set(services) >= {"postgresql", *DAGSTER_SERVICES}
    volumes = compose.get("volumes") or {}

    pg = services["postgresql"]
    assert pg["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "/var/lib/postgresql/data" in _volume_targets(pg)

    for name in DAGSTER_SERVICES:
        svc = services[name]
        env = _service_env(svc)
        assert svc.get("env_file") in (".env", [".env"]), f"{name}: secrets come from deploy/.env"
        assert env.get("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS") == "true", name
        assert _volume_targets(svc).get("/data") == "vtex_data", f"{name}: the DuckDB volume at /data"
        assert svc["depends_on"]["postgresql"]["condition"] == "service_healthy", name
        assert "image" in svc
    assert "vtex_data" in volumes

    code_cmd = _command(services["code"])
    assert code_cmd[:3] == ["dagster", "code-server", "start"]
    assert "vtex_pipeline.definitions" in code_cmd
    web_cmd = _command(services["webserver"])
    assert web_cmd[0] == "dagster-webserver" and "3000" in web_cmd
    assert any(str(p).endswith("3000:3000") for p in services["webserver"]["ports"])
    assert _command(services["daemon"])[:2] == ["dagster-daemon", "run"]

    # The workspace points at the code service's gRPC port, under the location name the UI shows.
    workspace = _yaml("workspace.yaml")["load_from"]
    assert len(workspace) == 1
    grpc = workspace[0]["grpc_server"]
    assert grpc["host"] == "code" and grpc["location_name"] == "vtex_pipeline"
    assert code_cmd[code_cmd.index("-p") + 1] == str(grpc["port"])
    for name in ("webserver", "daemon"):
        cmd = _command(services[name])
        assert cmd[cmd.index("-w") + 1] == "/opt/dagster/dagster_home/workspace.yaml"


def test_duckdb_volume_is_mounted_where_runs_execute() -> None:
    """DefaultRunLauncher: runs are subprocesses of the code server (the workspace's gRPC host), so
    that service mounts the volume; DockerRunLauncher: every run container gets it."""
    compose = _yaml("docker-compose.yml")
    launcher = _yaml("dagster.yaml")["run_launcher"]
    if launcher["class"] in ("DefaultRunLauncher", "MonitoredRunLauncher"):
        host = _yaml("workspace.yaml")["load_from"][0]["grpc_server"]["host"]
        assert _volume_targets(compose["services"][host]).get("/data") == "vtex_data"
    else:
        assert launcher["class"] == "DockerRunLauncher"
        run_volumes = launcher["config"]["container_kwargs"]["volumes"]
        assert any(str(v).endswith(":/data") for v in run_volumes), run_volumes
        assert {"DAGSTER_POSTGRES_PASSWORD", "VTEX_APP_TOKEN"} <= set(launcher["config"]["env_vars"])


def test_env_example_lists_every_variable_and_no_secret() -> None:
    example = _env_example()
    compose = _yaml("docker-compose.yml")
    compose_text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    set_by_compose = set(_service_env(compose["services"]["daemon"]))
    # what dagster.yaml reads and what compose substitutes
    needed = _env_refs(_yaml("dagster.yaml")) | set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    # every VTEX_* / ICOMM_* variable the pipeline reads (string literals in the package)
    for path in (ROOT / "vtex_pipeline").rglob("*.py"):
        if "simulators" in path.parts:
            continue
        needed |= set(re.findall(r"[\"']((?:VTEX|ICOMM)_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text("utf-8")))
    missing = sorted(n for n in needed if n not in example and n not in set_by_compose)
    assert not missing, f"deploy/.env.example does not list {missing}"
    for name in ("VTEX_PIPELINE_SYNC_CRON", "VTEX_PIPELINE_SENSOR_INTERVAL_SECONDS"):
        assert name in example
    for name in SECRETS:
        value = example[name].lower()
        assert value == "" or any(w in value for w in ("change-me", "replace", "xxxx")), (
            f"{name} in .env.example must be a placeholder, got {example[name]!r}"
        )


# -------------------------------------------------------------------------------------- Dockerfile
def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile)
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_builds_and_installs_the_wheel() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile, flags=re.M))
    stages = _stages(dockerfile)
    assert len(stages) >= 2, "multi-stage: a builder and the final image"
    builder, final = stages[0], stages[-1]
    final_from = final[0].split()[1]
    for name, value in args.items():
        final_from = final_from.replace("${" + name + "}", value)
    assert final_from == "python:3.11-slim"
    assert any("pip wheel --no-deps" in i for i in builder)
    installs = [i for i in final if re.match(r"RUN .*pip install", i)]
    assert any(".whl" in i for i in installs), f"the project is installed from its wheel: {installs}"
    for i in installs:  # anything else: the pins of pyproject.toml (a layer of their own), pinned tools
        assert ".whl" in i or ("pyproject.toml" in i and "-r /tmp/requirements.txt" in i), i
    assert any(i.startswith("ENTRYPOINT") and "dumb-init" in i for i in final), (
        "an init as PID 1 (signals, reaping) wherever the image runs, not only under compose's init: true"
    )
    assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", dockerfile)
    assert not any(re.match(r"COPY\s+\.\s", i) for i in final), "the final image holds no checkout"
    text = " ".join(final)
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in text
    assert "VTEX_PIPELINE_HOME=/data" in text
    assert re.search(r"COPY .*deploy/dagster\.yaml.*\$DAGSTER_HOME", text)
    cmd = next(i for i in final if i.startswith("CMD"))
    for token in ("code-server", "start", "0.0.0.0", "4000", "vtex_pipeline.definitions"):
        assert f'"{token}"' in cmd


def test_the_wheel_loads_the_definitions_outside_the_checkout(tmp_path: Path) -> None:
    """What the image does: `pip wheel --no-deps .` from pyproject.toml, README.md and vtex_pipeline/
    only, then the installed (not editable) package loads the definitions from another directory."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "vtex_pipeline", src / "vtex_pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path / "w"), "."],
        cwd=src, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        offline = re.search(r"(?i)connection|network|resolve|No matching distribution", built.stderr)
        if offline and not running_in_ci():
            pytest.skip(f"building the wheel needs setuptools from PyPI: {built.stderr.strip()[-300:]}")
        pytest.fail(f"pip wheel failed:\n{built.stdout}\n{built.stderr}")
    wheel = next((tmp_path / "w").glob("vtex_pipeline-*.whl"))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "VTEX_PIPELINE_HOME": str(work),
        "VTEX_PIPELINE_START_DATE": "2026-01-01",
        "ICOMM_PROFILE_KEY": "check",
    }
    env.pop("VTEX_PIPELINE_SQL_DIR", None)
    probe = (
        "import vtex_pipeline, vtex_pipeline.definitions as d\n"
        "from vtex_pipeline.warehouse.sql_files import read_sql\n"
        "read_sql('raw/create_raw_tables.sql')\n"
        "print(vtex_pipeline.__file__)\n"
        "print(sorted(s.name for s in d.defs.schedules), sorted(s.name for s in d.defs.sensors))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(str(site)), out.stdout
    assert "vtex_raw_sync_every_4h" in out.stdout and "vtex_profile_after_sync" in out.stdout
