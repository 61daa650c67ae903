"""Dagster resources: the VTEX client factory and the DuckDB file, one pair per integration.

Credentials reach the resource as `EnvVar`s, so the UI and run config show the variable's name,
never its value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBResource

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline.warehouse.connection import held_file_message


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


HELD_FILE_RETRIES = 6


class AccountDuckDBResource(DuckDBResource):
    """An account's DuckDB file. A file held by another process fails the step with a message naming
    that process (dagster-duckdb has already retried for a few seconds), not DuckDB's lock error."""

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # dagster-duckdb's own get_connection retries 10 times (0.1 s doubling: about 100 s) before it
        # gives up; a file held by a DuckDB CLI or a backup is rarely let go within that, so each step
        # sat 100 s in silence. Six tries (about 6 s) ride over a brief hold; then the step fails with the
        # holder's name and the next tick (or run_retries) tries again.
        try:
            conn = backoff(
                fn=duckdb.connect,
                retry_on=(RuntimeError, duckdb.IOException),
                kwargs={
                    "database": self.database,
                    "read_only": False,
                    "config": {"custom_user_agent": "dagster", **self.connection_config},
                },
                max_retries=HELD_FILE_RETRIES,
            )
        except duckdb.IOException as exc:
            message = held_file_message(exc, self.database)
            if message is None:
                raise
            raise dg.Failure(description=message) from exc
        try:
            yield conn
        finally:
            conn.close()


class VolumeDuckDBResource(AccountDuckDBResource):
    """The DuckDB file of an account whose file lives on a Kubernetes PersistentVolumeClaim: opened only
    when that volume is mounted. A run without the account's `dagster-k8s/config` tag (an ad-hoc
    materialization in the implicit asset job) gets a pod without the volume, where DuckDB would
    silently start an empty file on the pod's own disk (the image has /data); this fails instead."""

    account: str
    volume_claim: str
    mount_path: str

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not os.path.ismount(self.mount_path):  # never created here: that is the volume's job
            state = "is not a mounted volume" if os.path.isdir(self.mount_path) else "does not exist"
            raise dg.Failure(
                description=(
                    f"account '{self.account}': {self.mount_path} {state}, so PersistentVolumeClaim "
                    f"{self.volume_claim} is not mounted in this run and {self.database} would be a new, "
                    f"empty file on the pod's own disk. Launch the run from the account's job "
                    f"({self.account}_raw_sync or {self.account}_profile_export, whose dagster-k8s/config "
                    f"tag mounts the claim), or add that tag to the run."
                )
            )
        with super().get_connection() as conn:
            yield conn


def duckdb_resource(cfg: IntegrationConfig) -> DuckDBResource:
    if cfg.k8s_volume_claim and cfg.k8s_mount_path:
        return VolumeDuckDBResource(
            database=cfg.duckdb_path,
            account=cfg.name,
            volume_claim=cfg.k8s_volume_claim,
            mount_path=cfg.k8s_mount_path,
        )
    return AccountDuckDBResource(
        database=cfg.duckdb_path
    )  # UTC session is set by warehouse.connection.prepare


def resources_for(cfg: IntegrationConfig) -> dict[str, dg.ConfigurableResource]:
    return {cfg.resource_key("duckdb"): duckdb_resource(cfg), cfg.resource_key("vtex"): vtex_resource(cfg)}
