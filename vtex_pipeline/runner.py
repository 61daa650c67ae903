"""One complete pass (`vtex-pipeline run`): the raw sync job of each integration, executed by Dagster
as a single run over every 4-hour window from the last sync's watermark to the end of the as-of day."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.definitions import build_definitions
from vtex_pipeline.partitions import four_hourly_partitions, partition_key_for
from vtex_pipeline.warehouse.connection import connect
from vtex_pipeline.warehouse.raw_loads import get_watermark

log = logging.getLogger("vtex_pipeline.runner")


@dataclass
class RunOutcome:
    integration: str
    success: bool
    partition_range: tuple[str, str] | None
    run_id: str | None = None
    error: str | None = None
    metadata: dict[str, dict] = field(default_factory=dict)


def end_of_day_utc(as_of: date, tz: str) -> datetime:
    """The instant day `as_of` ends in the store's time zone, in UTC."""
    local = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def partition_range_for(cfg: IntegrationConfig, as_of: date, now: datetime) -> tuple[str, str] | None:
    """First and last 4-hour partition keys still to sync for `as_of`; None when already synced."""
    parts = four_hourly_partitions(cfg.start_date)
    keys = parts.get_partition_keys(current_time=now)
    if not keys:
        return None
    end = min(end_of_day_utc(as_of, cfg.timezone), now)
    last = partition_key_for(end - timedelta(microseconds=1))
    with connect(cfg.duckdb_path) as conn:
        marks = [get_watermark(conn, s) for s in ("orders", "customers")]
    synced = min((m for m in marks if m is not None), default=None) if all(marks) else None
    # Re-sync from the window holding the watermark: it may have been partial (the window in progress).
    first = keys[0] if synced is None else partition_key_for(synced)
    first = max(first, keys[0])
    last = min(last, keys[-1])
    if first > last:
        return None
    return first, last


def run_integration(
    cfg: IntegrationConfig,
    as_of: date,
    *,
    instance: dg.DagsterInstance,
    now: datetime | None = None,
    log_level: str = "INFO",
) -> RunOutcome:
    now = now or datetime.now(UTC)
    rng = partition_range_for(cfg, as_of, now)
    if rng is None:
        return RunOutcome(cfg.name, True, None)
    defs = build_definitions([cfg])
    job = defs.resolve_job_def(f"{cfg.name}_raw_sync")
    tags = {"dagster/asset_partition_range_start": rng[0], "dagster/asset_partition_range_end": rng[1]}
    # Progress and warnings on the console; Dagster's per-event DEBUG lines stay in the run's event log.
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False, run_config=run_config)
    outcome = RunOutcome(cfg.name, result.success, rng, run_id=result.run_id)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat is None:
            continue
        name = mat.asset_key.path[-1]
        outcome.metadata[name] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        msgs = []
        for e in failures:
            err = getattr(e.event_specific_data, "error", None)
            if err is not None:
                msgs.append(err.message.strip().splitlines()[0] if err.message else err.cls_name)
        outcome.error = "; ".join(dict.fromkeys(msgs)) or "run failed"
    return outcome
