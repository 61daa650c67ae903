"""Upgrades keep data. Release 0.1.0 (a wheel built from a git worktree of its commit, installed
into its own virtual environment with the same pinned dependencies) syncs, profiles and exports a store
into a DuckDB file and a Dagster instance on PostgreSQL; then the current code takes over with the
README's upgrade steps: `dagster instance migrate`, then the next run.

What it proves: the migration passes; every table the current code defines has every current column in
the upgraded file (created or extended), no row of the old release is lost, the old profile day is
unchanged, and re-running the same day sends icomm nothing (the export state carried over).

Minutes long (a wheel build): marked `daemon` with the other deployment tests; needs PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from vtex_pipeline_tests.deploy.daemon_stack import BIN, Processes, free_port, port_open, wait
from vtex_pipeline_tests.wheel_venv import wheel_venv

pytestmark = [pytest.mark.daemon, pytest.mark.postgres, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
# Release 0.1.0 by its commit, not the tag `v0.1.0`: a clone of `main` alone (CI's) may carry no tags,
# while every clone of main holds its history.
OLD_RELEASE = "f5a7801515add357fcc236aeb2e398375d02989d"
OLD_VERSION = "0.1.0"  # what that wheel reports
KEY, TOKEN = "vtexappkey-upgrade-LOCAL", "upgrade-T0KEN-not-a-secret"
ICOMM_KEY, PROFILE = "icomm-upgrade-key", "upgrade-profile"


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a venv holding the wheel of OLD_RELEASE, its dependencies this environment's (same pins)."""
    root = tmp_path_factory.mktemp("old_release")
    src = root / "src"
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_RELEASE}^{{commit}}"],
                           capture_output=True, check=False)  # fmt: skip
    if known.returncode:
        pytest.skip(f"release 0.1.0 ({OLD_RELEASE[:7]}) is not in this clone's history (a shallow clone?)")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(src), OLD_RELEASE],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        return wheel_venv(src, root)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(src)],
                       check=False, capture_output=True, timeout=120)  # fmt: skip


def _columns(conn: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def _counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
        ]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def _sent(contacts: Path) -> int:
    if not contacts.exists():
        return 0
    return sum(
        1 for line in contacts.read_text().splitlines() if json.loads(line).get("profile_key") == PROFILE
    )


def test_an_upgrade_keeps_every_row_and_resends_nothing_unchanged(
    old_release: Path, postgres_cluster, tmp_path: Path
) -> None:
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    db = data / "vtex.duckdb"
    contacts = tmp_path / "contacts.jsonl"
    # the instance an operator of the old release ran: PostgreSQL, pools of one
    storage = postgres_cluster.dagster_storage(postgres_cluster.create_database("upgrade"))
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": storage,
                "concurrency": {"pools": {"default_limit": 1}},
                "telemetry": {"enabled": False},
            }
        )
    )
    vtex_port, icomm_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "ICOMM_", "DAGSTER_"))}
    base.pop("PYTHONPATH", None)
    env = {
        **base,
        "DAGSTER_HOME": str(home),
        "VTEX_PIPELINE_HOME": str(tmp_path),
        "VTEX_PIPELINE_DUCKDB": str(db),
        "VTEX_ACCOUNT": "upgradestore",
        "VTEX_BASE_URL": f"http://127.0.0.1:{vtex_port}",
        "VTEX_APP_KEY": KEY,
        "VTEX_APP_TOKEN": TOKEN,
        "VTEX_REQUESTS_PER_SECOND": "1000",
        "ICOMM_BASE_URL": f"http://127.0.0.1:{icomm_port}",
        "ICOMM_API_KEY": ICOMM_KEY,
        "ICOMM_PROFILE_KEY": PROFILE,
        "ICOMM_REQUESTS_PER_SECOND": "50",
        "VTEX_TEST_MARKER": str(tmp_path),
    }
    procs = Processes(tmp_path, marker=f"VTEX_TEST_MARKER={tmp_path}")
    cli_now = str(BIN / "vtex-pipeline")
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    try:
        procs.start("vtex", [cli_now, "simulate", "vtex", "--port", str(vtex_port), "--customers", "200",
                             "--orders", "600", "--seed", "5", "--app-key", KEY, "--app-token", TOKEN], env, tmp_path)  # fmt: skip
        procs.start("icomm", [cli_now, "simulate", "icomm", "--port", str(icomm_port), "--out", str(contacts),
                              "--api-key", ICOMM_KEY, "--profile", PROFILE], env, tmp_path)  # fmt: skip
        for port in (vtex_port, icomm_port):
            wait(f"simulator on {port}", lambda p=port: procs.check_alive() or port_open(p), 60)

        def run(bin_dir: Path, *args: str) -> str:
            done = subprocess.run([str(bin_dir / args[0]), *args[1:]], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
            return done.stdout + done.stderr

        old_version = subprocess.check_output(
            [old_release / "python", "-c", "import importlib.metadata as m; print(m.version('vtex-pipeline'))"],
            env=env, cwd=tmp_path, text=True,  # not the checkout: its egg-info is the current version
        ).strip()  # fmt: skip
        assert old_version == OLD_VERSION
        run(old_release, "vtex-pipeline", "run", "--as-of", day)
        before = _counts(db)
        sent_by_old = _sent(contacts)
        assert before["raw_orders"] > 0 and before["customer_profile"] > 0 and sent_by_old > 0
        with duckdb.connect(str(db), read_only=True) as conn:
            old_profile = conn.execute("SELECT * FROM customer_profile ORDER BY ALL").fetchall()
            old_profile_cols = [d[0] for d in conn.description]

        # the README's upgrade steps with the current code
        out = run(BIN, "dagster", "instance", "migrate")
        assert "Traceback" not in out
        run(BIN, "vtex-pipeline", "run", "--as-of", day)
    finally:
        procs.stop_all()

    after = _counts(db)
    lost = {
        t: (n, after.get(t, 0)) for t, n in before.items() if t.startswith("raw_") and after.get(t, 0) < n
    }
    assert not lost, f"rows lost by the upgrade: {lost}"
    assert after["raw_orders"] == before["raw_orders"]  # same store, same day: nothing new either
    assert _sent(contacts) == sent_by_old, "the same day re-sent contacts after the upgrade"
    with duckdb.connect(str(db), read_only=True) as conn:
        cols = ", ".join(f'"{c}"' for c in old_profile_cols)
        assert conn.execute(f"SELECT {cols} FROM customer_profile ORDER BY ALL").fetchall() == old_profile
        upgraded = _columns(conn)
    # every table and column the current code creates exists in the upgraded file
    fresh_path = tmp_path / "fresh.duckdb"
    from vtex_pipeline.warehouse.connection import connect

    with connect(fresh_path):
        pass
    with duckdb.connect(str(fresh_path), read_only=True) as conn:
        current = _columns(conn)
    missing = {
        t: sorted(c - upgraded.get(t, set())) for t, c in current.items() if c - upgraded.get(t, set())
    }
    assert not missing, f"not created or extended by the upgrade: {missing}"
