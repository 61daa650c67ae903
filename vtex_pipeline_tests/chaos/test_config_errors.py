"""Configuration errors: one clear line, a non-zero exit, and nothing written (no DuckDB file)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.icomm_server import create_icomm_app
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import load_fixture
from vtex_pipeline.simulators.vtex_server import create_app

KEY, TOKEN, ICOMM_KEY = "vtexappkey-cfg-KEY", "cfg-TOKEN-secret", "icomm-cfg-KEY"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    now = datetime.now(UTC)
    store = load_fixture(generate_store(customers=5, orders=5, seed=1, now=now, span_days=1))
    vtex = ServerThread(create_app(store, app_keys={KEY: {"token": TOKEN, "permissions": ["*"]}})).start()
    icomm = ServerThread(create_icomm_app({ICOMM_KEY}, {"profile"})).start()
    yield vtex.url, icomm.url
    vtex.stop()
    icomm.stop()


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "ICOMM_", "DAGSTER_"))}
    cmd = [sys.executable, "-m", "vtex_pipeline.cli", "run", "--as-of", datetime.now(UTC).date().isoformat()]
    return subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, timeout=60)


def _vtex_env(vtex_url: str, db: Path) -> dict[str, str]:
    """A valid VTEX account on the simulator, its DuckDB file at `db`."""
    return {
        "VTEX_ACCOUNT": "cfgstore",
        "VTEX_BASE_URL": vtex_url,
        "VTEX_APP_KEY": KEY,
        "VTEX_APP_TOKEN": TOKEN,
        "VTEX_PIPELINE_DUCKDB": str(db),
    }


CASES = {
    "missing variable": ({"VTEX_APP_TOKEN": ""}, "VTEX_APP_TOKEN is not set"),
    "no account": ({"VTEX_ACCOUNT": "", "VTEX_BASE_URL": ""}, "VTEX_ACCOUNT"),
    "wrong account": ({"VTEX_BASE_URL": "http://127.0.0.1:9"}, "cannot reach VTEX"),
    "wrong key": ({"VTEX_APP_KEY": "vtexappkey-other"}, "rejected the app key or token"),
    "wrong token": ({"VTEX_APP_TOKEN": "wrong"}, "rejected the app key or token"),
    "unknown sales channel": ({"VTEX_SALES_CHANNELS": "1,77"}, "unknown sales channel id(s)"),
    "icomm profile missing": ({"ICOMM_PROFILE_KEY": "no-such-profile"}, "ProfileKey not found"),
    "icomm wrong key": ({"ICOMM_API_KEY": "nope"}, "ICOMM_API_KEY is refused"),
    "bad start date": ({"VTEX_PIPELINE_START_DATE": "yesterday"}, "start_date"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_is_one_line_before_anything_is_written(
    case: str, servers: tuple[str, str], tmp_path: Path
) -> None:
    vtex_url, icomm_url = servers
    db = tmp_path / "data" / "x.duckdb"
    env = {
        **_vtex_env(vtex_url, db),
        "ICOMM_BASE_URL": icomm_url,
        "ICOMM_API_KEY": ICOMM_KEY,
        "ICOMM_PROFILE_KEY": "profile",
    }
    overrides, expected = CASES[case]
    result = _run({**env, **overrides})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not db.exists() and not db.parent.exists()
    for secret in (KEY, TOKEN, ICOMM_KEY):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("case", ["locked", "unwritable"])
def test_unusable_duckdb_file(case: str, servers: tuple[str, str], tmp_path: Path) -> None:
    vtex_url, icomm_url = servers
    if case == "locked":
        db = tmp_path / "x.duckdb"
        holder = duckdb.connect(str(db))  # another process's writer, as far as the CLI can tell
    else:
        (tmp_path / "a-file").write_text("")
        db = tmp_path / "a-file" / "x.duckdb"
    try:
        result = _run(_vtex_env(vtex_url, db))
    finally:
        if case == "locked":
            holder.close()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "DuckDB file" in lines[0], result.stderr
