"""The one place that builds the Dagster `Definitions`: assets, checks, jobs, schedules, sensors and
resources for every configured integration (`vtex_pipeline.config.load_integrations`)."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._record import copy  # UnresolvedAssetJobDefinition is a record (the pinned dagster)

import vtex_pipeline.dagster_fixes  # noqa: F401  (steps waiting for a pool slot sleep: see the module)
from vtex_pipeline.assets.dashboard import build_dashboard_assets
from vtex_pipeline.assets.export import build_export_assets
from vtex_pipeline.assets.profile import build_profile_assets
from vtex_pipeline.assets.raw import build_raw_assets
from vtex_pipeline.config import IntegrationConfig, load_integrations
from vtex_pipeline.feed.assets import build_feed_assets, feed_asset_key
from vtex_pipeline.feed.sensor import orders_feed_sensor
from vtex_pipeline.heartbeat import heartbeat_in_process_executor
from vtex_pipeline.icomm.resource import resources_for_icomm
from vtex_pipeline.resources import resources_for
from vtex_pipeline.schedules import (
    k8s_run_tags,
    profile_after_sync_sensor,
    profile_export_job,
    raw_sync_job,
    raw_sync_schedule,
    sync_cron,
)
from vtex_pipeline.watchdog import sync_is_flowing_check, sync_watchdog_sensor

# A stalled pipeline shows in the UI: the raw sync runs every 4 hours, the profile every day.
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=12), warn_window=timedelta(hours=6)
)
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=30)
)


# One process per run: steps share the DuckDB file one at a time anyway (pool "duckdb_<name>"). Its
# worker writes a heartbeat that run monitoring reads (vtex_pipeline/heartbeat.py).
RUN_EXECUTOR = heartbeat_in_process_executor


def _with_freshness(assets: list, policy: dg.FreshnessPolicy) -> list:
    out = []
    for a in assets:
        if isinstance(a, dg.AssetsDefinition) and not isinstance(a, dg.AssetChecksDefinition):
            a = a.map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=policy))
        out.append(a)
    return out


def account_resources(cfg: IntegrationConfig) -> dict[str, dg.ConfigurableResource]:
    """The account's resources, keyed `<name>_duckdb`, `<name>_vtex` and (with icomm) `<name>_icomm`."""
    resources = resources_for(cfg)
    if cfg.icomm is not None:
        resources.update(resources_for_icomm(cfg, cfg.icomm))
    return resources


def model_jobs(
    cfg: IntegrationConfig,
) -> tuple[dg.UnresolvedAssetJobDefinition, dg.UnresolvedAssetJobDefinition]:
    """The raw sync and daily jobs of `schedules.py`, with the SQL models: the raw sync also rebuilds
    the staging tables its dashboard reads; the daily job runs everything upstream of the profile, the
    dashboard and the export except the raw sync itself (staging, then the models of the day)."""
    raw, daily = raw_sync_job(cfg), profile_export_job(cfg)
    raw_group = dg.AssetSelection.groups(f"{cfg.name}_raw")
    return (
        copy(raw, selection=raw.selection | dg.AssetSelection.groups(f"{cfg.name}_staging")),
        copy(daily, selection=daily.selection.upstream() - raw_group),
    )


def integration_definitions(cfg: IntegrationConfig) -> dg.Definitions:
    """Everything one VTEX account needs; accounts never share assets, jobs or DuckDB files."""
    assets = _with_freshness(build_raw_assets(cfg), RAW_FRESHNESS)
    assets += _with_freshness(build_profile_assets(cfg), DAILY_FRESHNESS)
    assets += _with_freshness(build_dashboard_assets(cfg), RAW_FRESHNESS)
    if cfg.icomm is not None:
        assets += _with_freshness(build_export_assets(cfg, cfg.icomm), DAILY_FRESHNESS)
    feed = cfg.feed_enabled()
    if feed:  # the Orders Feed path: switched on by its own key (vtex_pipeline/feed/)
        assets += build_feed_assets(cfg)
    # Resources are bound to the account's own assets and checks, not to the Definitions: Dagster gives
    # every job all of the Definitions' resources (config schema and all), so N accounts' jobs would each
    # carry N accounts' resources and the code location's snapshot would grow as N squared.
    assets = dg.with_resources(assets, account_resources(cfg))
    checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]
    checks.append(sync_is_flowing_check(cfg, sync_cron()))
    assets = [a for a in assets if not isinstance(a, dg.AssetChecksDefinition)]
    # The jobs are resolved here, against this account's assets alone, as Dagster's repository builder
    # would (`UnresolvedAssetJobDefinition.resolve`; internal, hence the pinned dagster). Left to the code
    # location, each job's selection is resolved against every account's assets: N jobs x N accounts'
    # assets, about 5 minutes of code-server start-up at 1,000 accounts (docs/scaling.md). A per-account
    # `Definitions(...).resolve_job_def` would build a repository per account, and each asks the
    # instance for its definitions state.
    graph = AssetGraph.from_assets([*assets, *checks])
    raw_job, daily_job = (
        job.resolve(asset_graph=graph, default_executor_def=RUN_EXECUTOR) for job in model_jobs(cfg)
    )
    jobs = [raw_job, daily_job]
    sensors = [profile_after_sync_sensor(cfg, daily_job), sync_watchdog_sensor(cfg, sync_cron())]
    if feed:
        feed_job = dg.define_asset_job(
            f"{cfg.name}_orders_feed_batch",
            run_tags=k8s_run_tags(cfg) or None,
            selection=dg.AssetSelection.assets(feed_asset_key(cfg)),
            description=f"Apply the Orders Feed events of '{cfg.name}' waiting in its inbox.",
        ).resolve(asset_graph=graph, default_executor_def=RUN_EXECUTOR)
        jobs.append(feed_job)
        sensors.append(orders_feed_sensor(cfg, feed_job))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=[raw_sync_schedule(cfg, raw_job)],
        sensors=sensors,
    )


def build_definitions(integrations: list[IntegrationConfig] | None = None) -> dg.Definitions:
    integrations = integrations if integrations is not None else load_integrations()
    merged = dg.Definitions.merge(*(integration_definitions(cfg) for cfg in integrations))
    return dg.Definitions.merge(merged, dg.Definitions(executor=RUN_EXECUTOR))


defs = build_definitions()
