"""Schedules: the raw sync every 4 hours, for the window that just closed.

The tick runs 10 minutes after the window ends: VTEX's order list index lags a few minutes, and the
next syncs' look-back catches whatever it still missed.
"""

from __future__ import annotations

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import WINDOW, end_of_day_utc, partition_key_for, window_start


def raw_sync_job(cfg: IntegrationConfig) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"{cfg.name}_raw_sync",
        selection=dg.AssetSelection.groups(f"{cfg.name}_raw")
        | dg.AssetSelection.assets([cfg.name, "dashboard"]),
        description=(
            f"Sync VTEX customers, orders and catalog of '{cfg.name}' for a 4-hour window (or a range), "
            "then refresh the dashboard."
        ),
    )


def raw_sync_schedule(cfg: IntegrationConfig, job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{cfg.name}_raw_sync_every_4h",
        cron_schedule="10 */4 * * *",
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every 4 hours, 10 minutes after a window closes, sync that window.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        closed = window_start(context.scheduled_execution_time) - WINDOW
        key = partition_key_for(closed)
        return dg.RunRequest(run_key=key, partition_key=key)

    return _schedule


def profile_export_job(cfg: IntegrationConfig) -> dg.UnresolvedAssetJobDefinition:
    """The daily profile for a date D, then (when icomm is configured) the export behind its checks, and
    the dashboard's segment panels."""
    keys = [dg.AssetKey([cfg.name, "customer_profile"]), dg.AssetKey([cfg.name, "dashboard"])]
    if cfg.icomm is not None:
        keys.append(dg.AssetKey([cfg.name, "icomm_contacts"]))
    return dg.define_asset_job(
        f"{cfg.name}_profile_export",
        selection=dg.AssetSelection.assets(*keys),
        description=f"Compute the customer profile of '{cfg.name}' as of a day, then export the changed contacts.",
    )


def profile_after_sync_sensor(
    cfg: IntegrationConfig, job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    """Requests the profile of day D once the raw windows up to the end of D (store time zone) are synced.

    The schedule syncs windows in order and every sync re-lists a look-back, so the last window of D
    being materialized for both orders and customers means D's purchases are in.
    """
    orders_key = dg.AssetKey([cfg.name, "raw_orders"])
    customers_key = dg.AssetKey([cfg.name, "raw_customers"])

    @dg.sensor(
        name=f"{cfg.name}_profile_after_sync",
        job=job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Computes (and exports) each day's profile once that day's raw windows are synced.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        from datetime import UTC, datetime, timedelta

        done_orders = context.instance.get_materialized_partitions(orders_key)
        done_customers = context.instance.get_materialized_partitions(customers_key)
        today = datetime.now(UTC).date()
        for back in range(3, 0, -1):  # the last few complete days, oldest first
            day = today - timedelta(days=back)
            if day < cfg.start_date:
                continue
            last = partition_key_for(end_of_day_utc(day, cfg.timezone) - timedelta(microseconds=1))
            if last in done_orders and last in done_customers:
                yield dg.RunRequest(run_key=f"profile-{day.isoformat()}", partition_key=day.isoformat())

    return _sensor
