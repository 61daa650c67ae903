"""Fixtures of the deployment tests: the throwaway PostgreSQL cluster (vtex_pipeline_tests/postgres.py)
and the `daemon` marker (`pytest -m "not daemon"` leaves out the minutes-long dagster-daemon test)."""

from __future__ import annotations

import pytest

from vtex_pipeline_tests.postgres import postgres_cluster  # noqa: F401 - a fixture, used by name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "daemon: runs dagster-daemon, a code server, simulators and PostgreSQL as processes for minutes "
        "(deselect with -m 'not daemon')",
    )
    config.addinivalue_line(
        "markers", "postgres: needs PostgreSQL's server binaries (skips without them unless CI is set)"
    )
