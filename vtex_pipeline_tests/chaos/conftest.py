"""A small generated store for the CI part of `make chaos` (three days of orders, so each run is short)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chaos.run import Sandbox
from vtex_pipeline.simulators.generator import generate_store

SPAN_DAYS = 3


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def small_fixture(now: datetime) -> dict[str, Any]:
    return generate_store(customers=40, orders=60, seed=3, now=now, span_days=SPAN_DAYS)


@pytest.fixture
def sandbox(now: datetime) -> Iterator[Callable[..., Sandbox]]:
    """Factory: `sandbox(fixture, **Sandbox options)` — fresh simulators, DuckDB file and DAGSTER_HOME."""
    boxes: list[Sandbox] = []

    def make(fixture: dict[str, Any], **kw: Any) -> Sandbox:
        box = Sandbox("test", fixture, now, **kw)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.close()
