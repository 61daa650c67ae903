"""Fixtures of the deployment tests: the throwaway PostgreSQL cluster (vtex_pipeline_tests/postgres.py)
and the `daemon` marker (`pytest -m "not daemon"` leaves out the minutes-long dagster-daemon test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vtex_pipeline_tests.deploy.daemon_stack import Processes
from vtex_pipeline_tests.postgres import postgres_cluster  # noqa: F401 - a fixture, used by name


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Processes]:
    """The test's processes (simulators, code server, daemon), all stopped at the end, logs kept."""
    procs = Processes(tmp_path / "logs", marker=f"VTEX_TEST_MARKER={tmp_path}")
    procs.log_dir.mkdir()
    try:
        yield procs
    finally:
        procs.stop_all()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "daemon: runs dagster-daemon, a code server, simulators and PostgreSQL as processes for minutes "
        "(deselect with -m 'not daemon')",
    )
    config.addinivalue_line(
        "markers",
        "container: builds the image of deploy/Dockerfile and runs its containers with podman (skips "
        "without podman, runc and debootstrap unless CI is set; `make deploy-test` runs these alone)",
    )
    config.addinivalue_line(
        "markers", "postgres: needs PostgreSQL's server binaries (skips without them unless CI is set)"
    )
