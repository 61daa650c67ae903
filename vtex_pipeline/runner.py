"""One complete pass (`vtex-pipeline run`): the raw sync job of each integration, executed by Dagster
as a single run over the days from the last sync's watermark to the end of the as-of day, then the
profile and export job for that day."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from vtex_pipeline.assets.raw import INCREMENTAL_TAG, SYNC_UNTIL_TAG
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.launcher import HOST_TAG, PID_TAG, pid_alive
from vtex_pipeline.partitions import WINDOW, end_of_day_utc, window_start
from vtex_pipeline.slots import wait_for_free_slot
from vtex_pipeline.warehouse.connection import connect
from vtex_pipeline.warehouse.raw_loads import get_watermark

log = logging.getLogger("vtex_pipeline.runner")


@dataclass
class RunOutcome:
    integration: str
    success: bool
    partition_range: tuple[str, str] | None
    run_id: str | None = None
    profile_run_id: str | None = None
    error: str | None = None
    metadata: dict[str, dict] = field(default_factory=dict)


def partition_range_for(cfg: IntegrationConfig, as_of: date, now: datetime) -> tuple[str, str] | None:
    """First and last day partition keys to sync for `as_of`: from the day of the last synced window on.

    The run is a refresh (`INCREMENTAL_TAG`): inside its first day it starts at the last synced 4-hour
    window, which may have been the window in progress; its look-back brings orders the list index
    showed late and status changes."""
    first_day = cfg.start_date
    end = min(end_of_day_utc(as_of, cfg.timezone), now)
    if end <= datetime.combine(first_day, time(0), tzinfo=UTC):
        return None
    last_day = (end - timedelta(microseconds=1)).date()
    with connect(cfg.duckdb_path) as conn:
        marks = [get_watermark(conn, s) for s in ("orders", "customers")]
    synced = min((m for m in marks if m is not None), default=None) if all(marks) else None
    if synced is not None:
        first_day = max(first_day, window_start(synced - timedelta(microseconds=1)).date())
    last_day = min(last_day, now.date())
    if first_day > last_day:
        return None
    return first_day.isoformat(), last_day.isoformat()


def sync_until_for(cfg: IntegrationConfig, as_of: date) -> datetime:
    """The end of the 4-hour window holding the end of `as_of` in the store's time zone."""
    return window_start(end_of_day_utc(as_of, cfg.timezone) - timedelta(microseconds=1)) + WINDOW


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs this command started on this host whose process is gone (SIGKILL, OOM,
    reboot), and free their `duckdb` pool slot: without a daemon's run monitoring nothing else does, and
    every later run would wait for that slot forever."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={HOST_TAG: socket.gethostname()},
        )
    )
    released = []
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone: killed or crashed")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log.warning(
            "run %s (%s) died with its process (pid %s): marked failed", run.run_id, run.job_name, pid
        )
        released.append(run.run_id)
    return released


def _execute(
    job: dg.JobDefinition, instance: dg.DagsterInstance, log_level: str, **kw
) -> dg.ExecuteInProcessResult:
    # Progress and warnings on the console; Dagster's per-event DEBUG lines stay in the run's event log.
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    kw["tags"] = {**(kw.get("tags") or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    return job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config, **kw)


def _collect(outcome: RunOutcome, result: dg.ExecuteInProcessResult) -> None:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        outcome.metadata[mat.asset_key.path[-1]] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()
        }
    if not result.success:
        msgs = []
        for e in result.all_events:
            if not e.is_failure:
                continue
            err = getattr(e.event_specific_data, "error", None)
            while (
                err is not None and err.cause is not None and "Error occurred while executing" in err.message
            ):
                err = err.cause
            if err is not None:
                msgs.append(err.message.strip().splitlines()[0] if err.message else err.cls_name)
        outcome.error = "; ".join(dict.fromkeys(msgs)) or "run failed"
        outcome.success = False


def run_integration(
    cfg: IntegrationConfig,
    as_of: date,
    *,
    instance: dg.DagsterInstance,
    now: datetime | None = None,
    log_level: str = "INFO",
    say: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Raw sync up to the end of `as_of`, then the profile as of `as_of`, then the icomm export.

    Before each run, waits (sleeping) while another run holds the account's pool slot, telling `say` which
    run and since when; SIGINT/SIGTERM during that wait raise `slots.Interrupted` with nothing started."""
    from vtex_pipeline.definitions import build_definitions  # builds every asset: only when running

    now = now or datetime.now(UTC)
    say = say or log.warning
    release_dead_runs(instance)
    defs = build_definitions([cfg])
    rng = partition_range_for(cfg, as_of, now)
    outcome = RunOutcome(cfg.name, True, rng)
    if rng is not None:
        tags = {
            "dagster/asset_partition_range_start": rng[0],
            "dagster/asset_partition_range_end": rng[1],
            INCREMENTAL_TAG: "true",
            SYNC_UNTIL_TAG: sync_until_for(cfg, as_of).isoformat(),
        }
        # the raw assets only: the dashboard is refreshed once, by the profile job that follows
        raw_keys = [dg.AssetKey([cfg.name, a]) for a in ("raw_customers", "raw_orders", "raw_catalog")]
        wait_for_free_slot(instance, cfg.pool, say=say)
        result = _execute(
            defs.resolve_job_def(f"{cfg.name}_raw_sync"),
            instance,
            log_level,
            tags=tags,
            asset_selection=raw_keys,
        )
        outcome.run_id = result.run_id
        _collect(outcome, result)
        if not outcome.success:
            return outcome
    wait_for_free_slot(instance, cfg.pool, say=say)
    result = _execute(
        defs.resolve_job_def(f"{cfg.name}_profile_export"),
        instance,
        log_level,
        partition_key=as_of.isoformat(),
    )
    outcome.profile_run_id = result.run_id
    _collect(outcome, result)
    return outcome
