"""The one place that builds the Dagster `Definitions`: assets, checks, jobs, schedules and resources
for every configured integration (`vtex_pipeline.config.load_integrations`)."""

from __future__ import annotations

import dagster as dg

from vtex_pipeline.assets.raw import build_raw_assets
from vtex_pipeline.config import IntegrationConfig, load_integrations
from vtex_pipeline.resources import resources_for
from vtex_pipeline.schedules import raw_sync_job, raw_sync_schedule


def build_definitions(integrations: list[IntegrationConfig] | None = None) -> dg.Definitions:
    integrations = integrations if integrations is not None else load_integrations()
    assets: list = []
    jobs: list = []
    schedules: list = []
    resources: dict = {}
    for cfg in integrations:
        assets.extend(build_raw_assets(cfg))
        job = raw_sync_job(cfg)
        jobs.append(job)
        schedules.append(raw_sync_schedule(cfg, job))
        resources.update(resources_for(cfg))
    checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]
    assets = [a for a in assets if not isinstance(a, dg.AssetChecksDefinition)]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        resources=resources,
        executor=dg.in_process_executor,
    )


defs = build_definitions()
