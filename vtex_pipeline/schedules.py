"""Schedules: the raw sync every 4 hours, for the window that just closed.

The tick runs 10 minutes after the window ends: VTEX's order list index lags a few minutes, and the
next syncs' look-back catches whatever it still missed.
"""

from __future__ import annotations

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import WINDOW, partition_key_for, window_start


def raw_sync_job(cfg: IntegrationConfig) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"{cfg.name}_raw_sync",
        selection=dg.AssetSelection.groups(f"{cfg.name}_raw"),
        description=f"Sync VTEX customers, orders and catalog of '{cfg.name}' for a 4-hour window (or a range).",
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
