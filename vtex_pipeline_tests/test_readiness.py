"""The checks before a run and in `verify`, one question at a time: the DuckDB file, the sales channels."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
from rich.console import Console

from vtex_pipeline.readiness import DuckDBFileProbe, preflight, probe_duckdb_file, verify_account
from vtex_pipeline.simulators.generator import generate_store


def test_a_missing_file_is_probed_in_the_nearest_existing_folder(tmp_path: Path):
    probe = probe_duckdb_file(tmp_path / "a" / "b" / "x.duckdb")
    assert not probe.exists and probe.folder == tmp_path
    assert probe.open_error is None and probe.create_error is None
    assert not (tmp_path / "a").exists()  # a probe writes nothing that stays

    db = tmp_path / "x.duckdb"
    duckdb.connect(str(db)).close()
    assert probe_duckdb_file(db) == DuckDBFileProbe(db, None)  # exists, opens


def test_preflight_names_a_duckdb_file_it_cannot_open_or_create(tmp_path: Path, vtex_env):
    # both fail before VTEX is asked: the URL is never reached
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_text("not a database")
    cfg = vtex_env("http://127.0.0.1:9", duckdb_path=str(garbage))
    problem = preflight(cfg)
    assert problem is not None and problem.startswith(f"cannot open DuckDB file {garbage}: IO Error:")

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    cfg = vtex_env("http://127.0.0.1:9", duckdb_path=str(blocker / "x.duckdb"))
    assert preflight(cfg) == (
        f"cannot create DuckDB file {blocker / 'x.duckdb'}: {blocker} is not a writable directory"
    )
    assert probe_duckdb_file(blocker / "x.duckdb").create_error.strerror == "Not a directory"


def test_an_unknown_sales_channel_is_named_before_a_run_and_in_verify(start_store, vtex_env):
    store = start_store(generate_store(customers=5, orders=5, seed=2, span_days=2))
    cfg = vtex_env(store.url, sales_channels=["1", "7"])
    assert preflight(cfg) == "unknown sales channel id(s) in VTEX_SALES_CHANNELS: 7 (the account has 1, 2, 3)"

    out, err = io.StringIO(), io.StringIO()
    why = verify_account(cfg, Console(file=out, width=200), Console(file=err, width=200))
    assert why == "unknown sales channel id(s) 7"
    assert "unknown sales channel id(s) in VTEX_SALES_CHANNELS: 7" in err.getvalue()
    assert "Loja principal" in out.getvalue()

    assert preflight(vtex_env(store.url, sales_channels=["3", "1"])) is None
