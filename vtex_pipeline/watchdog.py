"""Never a silent stop: the check `sync_is_flowing` on each account's `raw_orders`, and the sensor
`<name>_sync_watchdog` that evaluates it every minute and tells waiting runs who holds their slot.

The schedule skips a tick while a sync is in progress, so a sync that never ends (or a slot that is never
freed) would stop an account with nothing red in the UI but a freshness warning hours later. The check
says, within one sensor tick, why the account has not synced: which run holds the `duckdb_<name>` slot
and since when, that the last run failed, or that the schedule is stopped. `doctor` prints the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._utils.schedules import reverse_cron_string_iterator

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.schedules import IN_PROGRESS as SCHEDULE_IN_PROGRESS
from vtex_pipeline.slots import SlotHolder, slot_holders

CHECK_NAME = "sync_is_flowing"
WATCHDOG_INTERVAL_SECONDS = 60
# a run cancelling still holds its slot: in progress for this check
IN_PROGRESS = [*SCHEDULE_IN_PROGRESS, dg.DagsterRunStatus.CANCELING]
LIVE = {s.value for s in IN_PROGRESS}


@dataclass(frozen=True)
class SyncHealth:
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: dict[str, str]
    holders: list[SlotHolder]  # who held the account's pool slot when it was evaluated


def expected_gap(cron: str, now: datetime) -> timedelta:
    """Two schedule periods: one tick may skip while a long sync runs; a second skipped tick is news."""
    ticks = reverse_cron_string_iterator(now.timestamp(), cron, "UTC")
    a, b = next(ticks), next(ticks)
    return 2 * (a - b)


def sync_health(instance: dg.DagsterInstance, cfg: IntegrationConfig, cron: str, now: datetime) -> SyncHealth:
    """Is `cfg`'s raw sync flowing at `now`, and if not, why (what an operator would look up by hand)."""
    job = f"{cfg.name}_raw_sync"
    key = dg.AssetKey([cfg.name, "raw_orders"])
    event = instance.get_latest_materialization_event(key)
    last = datetime.fromtimestamp(event.timestamp, UTC) if event else None
    gap = expected_gap(cron, now)
    holders = slot_holders(instance, cfg.pool)
    meta = {"last_sync": last.isoformat() if last else "never", "expected_within": str(gap)}
    if holders:
        meta["pool_holder"] = "; ".join(h.describe(now) for h in holders)
    dead = [h for h in holders if h.status not in LIVE]
    if dead:
        return SyncHealth(
            False,
            dg.AssetCheckSeverity.ERROR,
            f"pool {cfg.pool} is held by a run that ended: {meta['pool_holder']}; run monitoring frees it "
            "after free_slots_after_run_end_seconds (or free it in the UI: Deployment > Concurrency)",
            meta,
            holders,
        )
    if last is not None and now - last <= gap:
        return SyncHealth(
            True, dg.AssetCheckSeverity.WARN, f"synced {last:%Y-%m-%d %H:%M} UTC", meta, holders
        )
    since = f"not synced since {last:%Y-%m-%d %H:%M} UTC" if last else "never synced"
    running = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=IN_PROGRESS), limit=1)
    if running:
        run = running[0]
        started = datetime.fromtimestamp(run.start_time or run.create_timestamp.timestamp(), UTC)
        meta["run_in_progress"] = run.dagster_run.run_id
        why = f"{since}: run {run.dagster_run.run_id} is {run.dagster_run.status.value} since {started:%Y-%m-%d %H:%M} UTC"
        if holders and all(h.run_id != run.dagster_run.run_id for h in holders):
            why += f", waiting for pool {cfg.pool} held by {meta['pool_holder']}"
        return SyncHealth(False, dg.AssetCheckSeverity.WARN, why, meta, holders)
    failed = instance.get_run_records(
        dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]),
        limit=1,
    )
    if failed and (last is None or (failed[0].end_time or 0) > last.timestamp()):
        run = failed[0].dagster_run
        meta["failed_run"] = run.run_id
        return SyncHealth(
            False,
            dg.AssetCheckSeverity.ERROR,
            f"{since}: the last sync run {run.run_id} ended {run.status.value}; the next tick retries",
            meta,
            holders,
        )
    return SyncHealth(
        False,
        dg.AssetCheckSeverity.ERROR,
        f"{since} and no sync run since: is the schedule {cfg.name}_raw_sync_every_4h running?",
        meta,
        holders,
    )


def _evaluation(cfg: IntegrationConfig, health: SyncHealth) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey([cfg.name, "raw_orders"]),
        check_name=CHECK_NAME,
        passed=health.passed,
        severity=health.severity,
        description=health.description,
        metadata={k: dg.MetadataValue.text(v) for k, v in health.metadata.items()},
    )


def sync_is_flowing_check(cfg: IntegrationConfig, cron: str) -> dg.AssetChecksDefinition:
    """The same evaluation on demand from the UI (it reads the instance only: no pool, no DuckDB)."""

    @dg.asset_check(
        asset=dg.AssetKey([cfg.name, "raw_orders"]),
        name=CHECK_NAME,
        description="The raw sync ran within two schedule periods; if not, which run or slot stops it.",
    )
    def _check(context) -> dg.AssetCheckResult:  # no annotation: a string under `annotations`
        health = sync_health(context.instance, cfg, cron, datetime.now(UTC))
        return dg.AssetCheckResult(
            passed=health.passed,
            severity=health.severity,
            description=health.description,
            metadata={k: dg.MetadataValue.text(v) for k, v in health.metadata.items()},
        )

    return _check


def sync_watchdog_sensor(cfg: IntegrationConfig, cron: str) -> dg.SensorDefinition:
    """Every minute: records `sync_is_flowing` when its verdict changes, and writes into the log of each
    run waiting for the account's slot which run holds it (Dagster's own message names only the pool)."""

    @dg.sensor(
        name=f"{cfg.name}_sync_watchdog",
        minimum_interval_seconds=WATCHDOG_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Says in the UI why an account stopped syncing, and who holds a waiting run's slot.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        instance = context.instance
        now = datetime.now(UTC)
        cursor = json.loads(context.cursor or "{}")
        health = sync_health(instance, cfg, cron, now)
        verdict = [health.passed, health.severity.value, health.metadata.get("pool_holder", "")]
        if cursor.get("verdict") != verdict:
            instance.report_runless_asset_event(_evaluation(cfg, health))
        told = cursor.get("told", {})
        holders = health.holders
        holder_ids = sorted(h.run_id for h in holders)
        still_waiting = {}
        if holders and instance.event_log_storage.supports_global_concurrency_limits:
            info = instance.event_log_storage.get_concurrency_info(cfg.pool)
            for pending in info.pending_steps:
                if pending.assigned_timestamp is not None or pending.run_id in holder_ids:
                    continue
                still_waiting[pending.run_id] = holder_ids
                run = instance.get_run_by_id(pending.run_id)
                if run is not None and told.get(pending.run_id) != holder_ids:
                    instance.report_engine_event(
                        f"step {pending.step_key} waits for pool {cfg.pool}, held by "
                        + "; ".join(h.describe(now) for h in holders),
                        run,
                    )
        context.update_cursor(json.dumps({"verdict": verdict, "told": still_waiting}))
        return dg.SkipReason(health.description)

    return _sensor
