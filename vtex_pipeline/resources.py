"""Dagster resources: the VTEX client factory and the DuckDB file, one pair per integration.

Credentials reach the resource as `EnvVar`s, so the UI and run config show the variable's name,
never its value.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.vtex.http import VtexClient, VtexSettings


class VtexResource(dg.ConfigurableResource):
    """Builds a rate-limited, retrying VTEX client for one account."""

    account: str = ""
    environment: str = "vtexcommercestable"
    base_url: str = ""
    app_key: str
    app_token: str
    requests_per_second: float = 10.0
    concurrency: int = 4
    timeout: float = 30.0
    credential_vars: str = "VTEX_APP_KEY / VTEX_APP_TOKEN"  # names only, for the 401 message

    def make_client(self) -> VtexClient:
        if not self.base_url and not self.account:
            raise dg.Failure(
                "VTEX_ACCOUNT (or VTEX_BASE_URL) is not set: configure a store, or run `vtex-pipeline dev` "
                "to serve the embedded demo store"
            )
        settings = VtexSettings(
            account=self.account or "simulated",
            environment=self.environment,
            app_key=self.app_key,
            app_token=self.app_token,
            base_url=self.base_url or None,
            requests_per_second=self.requests_per_second,
            concurrency=self.concurrency,
            timeout=self.timeout,
            credential_vars=self.credential_vars,
        )
        return VtexClient(settings)


def vtex_resource(cfg: IntegrationConfig) -> VtexResource:
    return VtexResource(
        account=cfg.account or "",
        environment=cfg.environment,
        base_url=cfg.base_url or "",
        app_key=dg.EnvVar(cfg.app_key_env),
        app_token=dg.EnvVar(cfg.app_token_env),
        requests_per_second=cfg.requests_per_second,
        concurrency=cfg.concurrency,
        timeout=cfg.request_timeout,
        credential_vars=f"{cfg.app_key_env} / {cfg.app_token_env}",
    )


def duckdb_resource(cfg: IntegrationConfig) -> DuckDBResource:
    return DuckDBResource(database=cfg.duckdb_path)  # UTC session is set by warehouse.connection.prepare


def resources_for(cfg: IntegrationConfig) -> dict[str, dg.ConfigurableResource]:
    return {cfg.resource_key("duckdb"): duckdb_resource(cfg), cfg.resource_key("vtex"): vtex_resource(cfg)}
