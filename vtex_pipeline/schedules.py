"""The raw sync every 4 hours, and the daily profile once a day's data is in.

Raw assets are partitioned by UTC day and refreshed every 4 hours: each tick, 10 minutes after a
4-hour window closes (VTEX's order list index lags a few minutes; the next sync's look-back catches the
rest), requests one run over the days from the last one not fully synced up to the window's day, so a
stopped daemon or a first start catches up in one run. The profile of day D (store time zone) is
requested once both raw assets report data synced past the end of D.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from vtex_pipeline.assets.raw import INCREMENTAL_TAG
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import WINDOW, end_of_day_utc, partition_key_for, window_start

SYNC_CRON = "10 */4 * * *"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
SENSOR_INTERVAL_SECONDS = 300


def sync_cron() -> str:
    """`VTEX_PIPELINE_SYNC_CRON` (UTC): a store that wants fewer or more refreshes; tests tick each minute."""
    return os.environ.get("VTEX_PIPELINE_SYNC_CRON") or SYNC_CRON


K8S_CONFIG_TAG = "dagster-k8s/config"  # read by dagster_k8s.K8sRunLauncher from each run's tags
K8S_VOLUME_NAME = "vtex-account-data"
K8S_CLAIM_LABEL = "vtex-pipeline/claim"


def k8s_run_tags(cfg: IntegrationConfig) -> dict[str, str]:
    """Run tags mounting the account's PersistentVolumeClaim at its mount path in the run pod (Kubernetes,
    `K8sRunLauncher`), so one code location serves many accounts, each with its own volume. Empty when
    the account has no claim. Names only: no secret ever goes into a tag.

    The pod is labelled with its claim and prefers the node of another pod holding that claim: two runs
    of one account can have pods alive at once (the pool serializes their steps, not their pods), and a
    ReadWriteOnce volume attaches to one node at a time."""
    if not cfg.k8s_volume_claim:
        return {}
    claim = cfg.k8s_volume_claim
    same_claim = {"label_selector": {"match_labels": {K8S_CLAIM_LABEL: claim}}}
    config = {
        "pod_template_spec_metadata": {"labels": {K8S_CLAIM_LABEL: claim}},
        "pod_spec_config": {
            "volumes": [{"name": K8S_VOLUME_NAME, "persistent_volume_claim": {"claim_name": claim}}],
            "affinity": {
                "pod_affinity": {
                    "preferred_during_scheduling_ignored_during_execution": [
                        {
                            "weight": 100,
                            "pod_affinity_term": {**same_claim, "topology_key": "kubernetes.io/hostname"},
                        }
                    ]
                }
            },
        },
        "container_config": {"volume_mounts": [{"name": K8S_VOLUME_NAME, "mount_path": cfg.k8s_mount_path}]},
    }
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}


def raw_sync_job(cfg: IntegrationConfig) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"{cfg.name}_raw_sync",
        run_tags=k8s_run_tags(cfg) or None,
        # sync_is_flowing reads only the instance and is evaluated by the account's watchdog sensor:
        # not a step of every sync (every step of this job is a writer in the account's pool)
        selection=(
            dg.AssetSelection.groups(f"{cfg.name}_raw") | dg.AssetSelection.assets([cfg.name, "dashboard"])
        )
        - dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey([cfg.name, "raw_orders"]), "sync_is_flowing")
        ),
        description=(
            f"Sync VTEX customers, orders and catalog of '{cfg.name}' for a day (or a range of days), "
            "then refresh the dashboard."
        ),
    )


def synced_until(instance: dg.DagsterInstance, key: dg.AssetKey, day: str | None = None) -> datetime | None:
    """How far the latest materialization of a raw asset (of day partition `day`) synced (its metadata)."""
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day] if day else None)
    result = instance.fetch_materializations(records_filter, 1)
    if not result.records:
        return None
    mat = result.records[0].asset_materialization
    value = mat.metadata.get("synced_until") if mat else None
    raw = getattr(value, "value", value)
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None


def catch_up_range(
    instance: dg.DagsterInstance, cfg: IntegrationConfig, now: datetime
) -> tuple[str, str] | None:
    """Days to sync at `now`: from the last day not fully synced (or the start date) to the day of the
    4-hour window that just closed."""
    closed = window_start(now) - WINDOW
    last = closed.date()
    if last < cfg.start_date:
        return None
    orders_key = dg.AssetKey([cfg.name, "raw_orders"])
    # day keys only: an instance upgraded from 4-hour partitions still holds "YYYY-MM-DD-HH:MM" keys
    days = [date.fromisoformat(k) for k in instance.get_materialized_partitions(orders_key) if len(k) == 10]
    first = cfg.start_date
    if days:
        latest = max(days)
        until = synced_until(instance, orders_key, latest.isoformat())
        day_end = datetime.combine(latest + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        first = latest if until is None or until < day_end else latest + timedelta(days=1)
    first = min(max(first, cfg.start_date), last)
    return first.isoformat(), last.isoformat()


def busy_reason(instance: dg.DagsterInstance, cfg: IntegrationConfig, record: dg.RunRecord) -> str:
    """Why a tick skips, in words an operator can act on: the run in progress, its status and age, and
    who holds the account's pool slot if not that run."""
    from vtex_pipeline.slots import slot_holders

    run = record.dagster_run
    started = datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), UTC)
    why = f"run {run.run_id} of {run.job_name} is still in progress ({run.status.value} since {started:%Y-%m-%d %H:%M:%S} UTC)"
    holders = slot_holders(instance, cfg.pool)
    others = [h for h in holders if h.run_id != run.run_id]
    if others:
        why += f"; pool {cfg.pool} is held by " + "; ".join(h.describe() for h in others)
    elif holders:
        why += f"; it holds pool {cfg.pool}"
    return why


def raw_sync_schedule(cfg: IntegrationConfig, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{cfg.name}_raw_sync_every_4h",
        cron_schedule=sync_cron(),
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Every 4 hours, 10 minutes after a window closes: sync from the last day not fully synced "
            "up to that window's day, in one run (a refresh: only what changed since the last sync)."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        busy = context.instance.get_run_records(
            dg.RunsFilter(job_name=job.name, statuses=IN_PROGRESS), limit=1
        )
        if busy:  # a long first sync: the next tick after it catches up from where it ended
            return dg.SkipReason(busy_reason(context.instance, cfg, busy[0]))
        now = context.scheduled_execution_time.astimezone(UTC)
        rng = catch_up_range(context.instance, cfg, now)
        if rng is None:
            return dg.SkipReason(f"the start date {cfg.start_date} is after the window that just closed")
        window = partition_key_for(window_start(now) - WINDOW)
        tags = {INCREMENTAL_TAG: "true"}
        if rng[0] == rng[1]:
            return dg.RunRequest(run_key=window, partition_key=rng[0], tags=tags)
        tags.update(
            {"dagster/asset_partition_range_start": rng[0], "dagster/asset_partition_range_end": rng[1]}
        )
        return dg.RunRequest(run_key=window, tags=tags)

    return _schedule


# A profile run that `run_retries` re-launches (its worker died) re-runs every step, not only those from
# the failure on: the day's models (int_purchases, ...) hold one as-of day, and when several days are
# requested at once (a catch-up) the next day's run takes the freed slot before the retry and replaces
# them; a retry of customer_profile alone then refused them (StaleUpstreamError) and the day's profile
# was never built. Re-built for D, an older D only adds its history: the current profile (and so the
# export) stays on the newest day (`profile.compute._write_results`).
RETRY_STRATEGY_TAG = "dagster/retry_strategy"


def profile_export_job(cfg: IntegrationConfig) -> dg.UnresolvedAssetJobDefinition:
    """The daily profile for a date D, then (when icomm is configured) the export behind its checks, and
    the dashboard's segment panels."""
    keys = [dg.AssetKey([cfg.name, "customer_profile"]), dg.AssetKey([cfg.name, "dashboard"])]
    if cfg.icomm is not None:
        keys.append(dg.AssetKey([cfg.name, "icomm_contacts"]))
    return dg.define_asset_job(
        f"{cfg.name}_profile_export",
        run_tags={**k8s_run_tags(cfg), RETRY_STRATEGY_TAG: "ALL_STEPS"},
        selection=dg.AssetSelection.assets(*keys),
        description=f"Compute the customer profile of '{cfg.name}' as of a day, then export the changed contacts.",
    )


def day_synced(instance: dg.DagsterInstance, cfg: IntegrationConfig, day: date) -> bool:
    """Both raw assets synced past the end of `day` in the store's time zone."""
    end = end_of_day_utc(day, cfg.timezone)
    holder = (end - timedelta(microseconds=1)).date().isoformat()  # the UTC day partition holding it
    orders = synced_until(instance, dg.AssetKey([cfg.name, "raw_orders"]), holder)
    customers = synced_until(instance, dg.AssetKey([cfg.name, "raw_customers"]))  # not partitioned
    return all(until is not None and until >= end for until in (orders, customers))


def profile_after_sync_sensor(cfg: IntegrationConfig, job: dg.JobDefinition) -> dg.SensorDefinition:
    """Requests the profile of day D once orders and customers are synced past the end of D (store time
    zone). Syncs go forward and re-list a look-back, so that point means D's purchases are in."""
    interval = int(os.environ.get("VTEX_PIPELINE_SENSOR_INTERVAL_SECONDS") or SENSOR_INTERVAL_SECONDS)

    @dg.sensor(
        name=f"{cfg.name}_profile_after_sync",
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Computes (and exports) each day's profile once that day's raw data is synced.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        today = datetime.now(UTC).date()
        for back in range(3, 0, -1):  # the last few complete days, oldest first
            day = today - timedelta(days=back)
            if day < cfg.start_date:
                continue
            if day_synced(context.instance, cfg, day):
                yield dg.RunRequest(run_key=f"profile-{day.isoformat()}", partition_key=day.isoformat())

    return _sensor
