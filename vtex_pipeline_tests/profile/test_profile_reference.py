"""Scoring with the daily run's rules (profile/reference.py): on its own day the reference reproduces the
daily profile in every column, and on a later day RFM follows the boundaries of D, never T's ranks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.profile.reference import NoReferenceError, load_reference
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline_tests.profile.test_profile_predictions import D, simulate_orders, write_store


@pytest.fixture(scope="module")
def daily(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "store.duckdb"
    conn = duckdb.connect(str(path))
    prepare(conn)
    write_store(conn, simulate_orders(1500, seed=11), extra_customers=3)
    compute_profile(conn, IntegrationConfig(duckdb_path=str(path)), ProfileSettings(clv_model="mbgnbd"), D)
    conn.close()
    return path


def _rows(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY customer_id").fetchall()


def test_on_its_own_day_the_reference_gives_the_daily_profile_in_every_column(daily):
    conn = duckdb.connect(str(daily))
    prepare(conn)
    cfg = IntegrationConfig(duckdb_path=str(daily))
    ref = load_reference(conn)
    assert ref.as_of == D and ref.transaction_model == "mbgnbd" and ref.has_predictions
    stats = compute_profile(conn, cfg, ProfileSettings(clv_model="mbgnbd"), D, write=False,
                            reference=ref, keep_intermediates=True)  # fmt: skip
    assert stats["predictions"]["status"] == "reference"
    daily_rows, scored = _rows(conn, "main.customer_profile"), _rows(conn, "temp.profile_result")
    assert len(daily_rows) == 1503 and len(scored) == len(daily_rows)
    assert scored == daily_rows  # every column, RFM and predictions included
    conn.close()


def test_a_later_day_scores_with_the_boundaries_of_d(daily):
    """Thresholds of D read back from the file: R = best score among D's buyers at that recency or more,
    M = best among D's buyers at that amount or less (checked row by row against D's own rows)."""
    conn = duckdb.connect(str(daily))
    prepare(conn)
    cfg = IntegrationConfig(duckdb_path=str(daily))
    ref = load_reference(conn)
    t = D + timedelta(days=20)
    compute_profile(conn, cfg, ProfileSettings(clv_model="mbgnbd"), t, write=False, reference=ref,
                    keep_intermediates=True)  # fmt: skip
    d_rows = conn.execute(
        "SELECT w.recency_lifetime, w.cents_lifetime, r.r_lifetime, r.m_lifetime "
        "FROM main.int_windows w JOIN main.int_rfm r USING (ckey)"
    ).fetchall()
    t_rows = conn.execute(
        "SELECT w.recency_lifetime, w.cents_lifetime, r.r_lifetime, r.m_lifetime, r.as_of "
        "FROM temp.int_windows w JOIN temp.int_rfm r USING (ckey)"
    ).fetchall()
    assert t_rows and all(row[4] == t for row in t_rows)
    for recency, cents, r, m, _ in t_rows:
        want_r = max((dr for drec, _, dr, _ in d_rows if drec >= recency), default=1)
        want_m = max((dm for _, dc, _, dm in d_rows if dc <= cents), default=1)
        assert (r, m) == (want_r, want_m), (recency, cents)
    conn.close()


def test_no_daily_profile_yet_is_a_clear_error(tmp_path):
    conn = duckdb.connect(str(tmp_path / "empty.duckdb"))
    prepare(conn)
    with pytest.raises(NoReferenceError, match="no daily profile yet"):
        load_reference(conn)
