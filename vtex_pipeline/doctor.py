"""`vtex-pipeline doctor`: is this deployment able to run the pipeline? Each check says what it looked
at and, when it fails, what to change. No Dagster run is started and nothing is written but a probe."""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.instance import PLANNED_EVENTS_ENV, describe_storage
from vtex_pipeline.readiness import first_line, probe_duckdb_file

# Every data file the pipeline reads at run time, relative to the package.
PACKAGE_FILES = (
    "sql/raw/create_raw_tables.sql",
    "sql/marts/customer_profile.sql",
    "sql/seeds/rfm_segments.csv",
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_instance(
    instance, planned_events: str | None = None, pools: tuple[str, ...] = ("duckdb_vtex",)
) -> list[Check]:
    """Storage reachable, every integration's `duckdb_<name>` pool limited to 1, run monitoring freeing
    slots of dead runs."""
    checks = []
    try:
        instance.get_runs(limit=1)
        checks.append(
            Check("instance storage", True, f"{describe_storage(instance)} at {instance.root_directory}")
        )
    except Exception as exc:  # any storage error: the message names the database
        return [Check("instance storage", False, f"cannot read runs: {first_line(exc)}")]
    default = instance.get_concurrency_config().pool_config.default_pool_limit
    for pool in pools:
        effective = default
        # the pool's own limit (`dagster instance concurrency set <pool> 1`), else the default; storages
        # without global concurrency raise
        with contextlib.suppress(Exception):
            effective = instance.event_log_storage.get_concurrency_info(pool).limit
        checks.append(
            Check(
                f"pool {pool}",
                effective == 1,
                f"limit {effective}"
                if effective == 1
                else f"limit {effective}: DuckDB allows one writer per file; set `concurrency: pools: "
                "default_limit: 1` in dagster.yaml",
            )
        )
    monitoring = instance.run_monitoring_enabled
    free_after = (instance.run_monitoring_settings or {}).get("free_slots_after_run_end_seconds")
    launcher = instance.run_launcher
    health = launcher.supports_check_run_worker_health
    checks.append(
        Check(
            "run monitoring",
            bool(monitoring and free_after and health),
            f"on, {type(launcher).__name__} checks run workers, slots of ended runs freed after {free_after} s"
            if monitoring and free_after and health
            else "set `run_monitoring: {enabled: true, free_slots_after_run_end_seconds: 30}` and "
            "`run_launcher: {module: vtex_pipeline.launcher, class: MonitoredRunLauncher}`: "
            f"with {type(launcher).__name__}{'' if monitoring else ' and monitoring off'}, a run killed "
            "with its code server stays STARTED and holds the DuckDB slot forever",
        )
    )
    planned = (planned_events or "").lower() in ("1", "true", "yes")
    checks.append(
        Check(
            "range runs",
            planned,
            "one planned event per asset"
            if planned
            else f"set {PLANNED_EVENTS_ENV}=true for the webserver and "
            "daemon: without it a two-year backfill writes one planned event per day and asset first",
        )
    )
    return checks


def check_duckdb(cfg: IntegrationConfig) -> list[Check]:
    """The file opens for writing (no other process holds it) and its disk can hold a second copy."""
    probe = probe_duckdb_file(cfg.duckdb_path)
    path, name = probe.path, f"{cfg.name}: DuckDB file"
    if probe.open_error is not None:
        pid = re.search(r"PID (\d+)", str(probe.open_error))
        why = f"locked by process {pid.group(1)}" if pid else first_line(probe.open_error)
        checks = [Check(name, False, f"{path}: {why}")]
    elif probe.create_error is not None:
        why = f"{probe.create_error.strerror} in {probe.folder}"
        checks = [Check(name, False, f"cannot create {path}: {why}")]
    elif probe.exists:
        checks = [Check(name, True, f"{path} opens for writing")]
    else:
        checks = [Check(name, True, f"{path} will be created ({probe.folder} is writable)")]
    size = 0
    if probe.exists:
        wal = path.with_name(path.name + ".wal")
        size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    free = shutil.disk_usage(probe.folder or path).free
    checks.append(
        Check(
            f"{cfg.name}: disk space",
            free >= size,
            f"{free / 1e9:.1f} GB free, file {size / 1e9:.2f} GB (a rewrite may need its size again)",
        )
    )
    return checks


def check_package_files() -> list[Check]:
    """The SQL, seed and default mappings ship in the package (or in the operator's overrides)."""
    from vtex_pipeline.icomm.fields import packaged_mapping_file
    from vtex_pipeline.warehouse.sql_files import sql_dir

    base = sql_dir()
    missing = [f for f in PACKAGE_FILES if not (base / f.removeprefix("sql/")).is_file()]
    n_sql = len(list(base.rglob("*.sql"))) if base.is_dir() else 0
    mapping = packaged_mapping_file()
    checks = [
        Check(
            "SQL files",
            not missing and n_sql > 0,
            f"{n_sql} files in {base}" if not missing else f"missing in {base}: {', '.join(missing)}",
        ),
        Check("icomm field mapping", mapping.is_file(), str(mapping)),
    ]
    return checks


def run_checks(
    integrations: list[IntegrationConfig], instance, planned_events: str | None = None
) -> list[Check]:
    """`planned_events`: the value of PLANNED_EVENTS_ENV in the environment the operator gave."""
    pools = tuple(cfg.pool for cfg in integrations)
    checks = check_package_files() + check_instance(instance, planned_events, pools)
    for cfg in integrations:
        checks += check_duckdb(cfg)
        checks += check_sync(instance, cfg)
    return checks


def check_sync(instance, cfg: IntegrationConfig) -> list[Check]:
    """Who holds the account's pool slot, and whether its sync is flowing (the `sync_is_flowing` check)."""
    from datetime import UTC, datetime

    from vtex_pipeline.schedules import sync_cron
    from vtex_pipeline.watchdog import LIVE, sync_health

    try:
        health = sync_health(instance, cfg, sync_cron(), datetime.now(UTC))
    except Exception as exc:  # the instance check above already says why storage fails
        return [Check(f"{cfg.name}: sync", False, f"cannot read the instance: {type(exc).__name__}")]
    holders = health.holders
    slot = Check(
        f"{cfg.name}: pool {cfg.pool}",
        all(h.status in LIVE for h in holders),
        "free" if not holders else "held by " + "; ".join(h.describe() for h in holders),
    )
    never = health.metadata.get("last_sync") == "never" and "no sync run" in health.description
    sync = Check(
        f"{cfg.name}: sync",
        health.passed or health.severity.value == "WARN" or never,
        health.description,
    )
    return [slot, sync]
