"""Shared fixtures: a simulated VTEX store over real HTTP, and an integration config pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from vtex_pipeline.config import IntegrationConfig, default_start_date

APP_KEY = "vtexappkey-test-KEY123"
APP_TOKEN = "test-token-SECRET-0000"


class SimStore:
    """A running VTEX simulator and helpers to mutate it and read its own counts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sim/stats", timeout=30).json()

    def fixture(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sim/fixture", timeout=60).json()

    def set_status(self, order_id: str, status: str) -> None:
        requests.post(
            f"{self.url}/_sim/orders/{order_id}/status", json={"status": status}, timeout=30
        ).raise_for_status()

    def set_faults(self, spec: str) -> None:
        requests.post(f"{self.url}/_sim/faults", json={"spec": spec}, timeout=30).raise_for_status()

    def put_orders(self, orders: list[dict[str, Any]]) -> None:
        requests.post(f"{self.url}/_sim/orders", json=orders, timeout=60).raise_for_status()


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets its own pipeline home and Dagster instance: nothing lands in ~ or the checkout."""
    monkeypatch.setenv("VTEX_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")


@pytest.fixture
def start_store() -> Iterator[Callable[..., SimStore]]:
    """Factory: `start_store(fixture_dict, app_keys=None, faults=None)` serves it on 127.0.0.1."""
    from vtex_pipeline.simulators.faults import FaultSpec
    from vtex_pipeline.simulators.server import ServerThread
    from vtex_pipeline.simulators.store import load_fixture
    from vtex_pipeline.simulators.vtex_server import create_app

    servers: list[ServerThread] = []

    def _start(
        fixture: dict[str, Any], *, app_keys: dict | None = None, faults: str | None = None, **kw
    ) -> SimStore:
        keys = app_keys or {APP_KEY: {"token": APP_TOKEN, "permissions": ["*"]}}
        app = create_app(
            load_fixture(fixture), app_keys=keys, faults=FaultSpec.parse(faults) if faults else None, **kw
        )
        server = ServerThread(app).start()
        servers.append(server)
        return SimStore(server.url)

    yield _start
    for s in servers:
        s.stop()


@pytest.fixture
def vtex_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., IntegrationConfig]:
    """Factory: point the environment at a simulator and return the matching integration config."""

    def _env(url: str, **overrides: Any) -> IntegrationConfig:
        db = str(tmp_path / "vtex.duckdb")
        monkeypatch.setenv("VTEX_ACCOUNT", "teststore")
        monkeypatch.setenv("VTEX_BASE_URL", url)
        monkeypatch.setenv("VTEX_APP_KEY", overrides.pop("app_key", APP_KEY))
        monkeypatch.setenv("VTEX_APP_TOKEN", overrides.pop("app_token", APP_TOKEN))
        monkeypatch.setenv("VTEX_PIPELINE_DUCKDB", db)
        monkeypatch.delenv("VTEX_PIPELINE_INTEGRATIONS", raising=False)
        fields = dict(
            account="teststore",
            base_url=url,
            duckdb_path=db,
            requests_per_second=2000,
            concurrency=8,
            start_date=default_start_date(),
            request_timeout=10,
        )
        fields.update(overrides)
        return IntegrationConfig(**fields)

    return _env


def now_utc() -> datetime:
    return datetime.now(UTC)
