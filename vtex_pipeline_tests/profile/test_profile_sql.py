"""SQL-level checks of the helpers and rules on small hand-made inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.profile.compute import SeedError, load_rfm_segments
from vtex_pipeline.profile.models import prepare_models
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline.warehouse.raw_loads import insert_rows


@pytest.fixture
def conn():
    c = duckdb.connect()
    prepare(c)
    prepare_models(c)
    yield c
    c.close()


def test_quintile_is_the_exact_percent_rank_formula(conn):
    for n in range(1, 40):
        for rank in range(1, n + 1):
            got = conn.execute("SELECT rfm_quintile(?::BIGINT, ?::BIGINT)", [rank, n]).fetchone()[0]
            want = 5 if n == 1 else min(5, 1 + int(5 * Fraction(rank - 1, n - 1)))
            assert got == want, (rank, n)


@pytest.mark.parametrize(
    "cents,n", [(17000, 3), (250, 2), (150, 4), (50, 4), (-150, 4), (1, 2), (3, 2), (0, 5)]
)
def test_average_is_rounded_half_even_to_the_cent(conn, cents, n):
    got = conn.execute("SELECT cents_to_amount(div_half_even(?::BIGINT, ?::BIGINT))", [cents, n]).fetchone()[
        0
    ]
    want = (Decimal(cents) / Decimal(n) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    assert got == want


def test_frequency_thresholds_are_configurable(conn):
    got = [
        conn.execute("SELECT rfm_frequency(?::BIGINT, 2, 3, 4, 6)", [n]).fetchone()[0] for n in range(1, 9)
    ]
    assert got == [1, 2, 3, 4, 4, 5, 5, 5]


def test_seed_must_cover_every_pair(conn, tmp_path: Path):
    bad = tmp_path / "seg.csv"
    bad.write_text("f_score,r_score,rfm_group,rfm_segment\n,,PROSPECTS,PROSPECTS\n1,5,B,B_NEW\n")
    with pytest.raises(SeedError, match="missing"):
        load_rfm_segments(conn, bad)
    assert load_rfm_segments(conn) == 26


def test_excluded_statuses_and_sales_channels_come_from_configuration(conn):
    now = datetime(2025, 1, 10, 12, tzinfo=UTC)
    insert_rows(
        conn,
        "raw_customers",
        [
            {
                "customer_id": "c1",
                "user_id": "u1",
                "created_in": now,
                "partition_key": "p",
                "synced_at": now,
                "record": "{}",
            }
        ],
    )
    insert_rows(
        conn,
        "raw_orders",
        [
            {"order_id": f"o{i}", "creation_date": now, "creation_date_raw": "x", "status": s, "sales_channel": ch,
             "value_cents": 100, "user_profile_id": "u1", "partition_key": "p", "synced_at": now, "record": "{}"}
            for i, (s, ch) in enumerate([("invoiced", "1"), ("handling", "2"), ("canceled", "1"), (None, "1")])
        ],
    )  # fmt: skip
    as_of = date(2025, 1, 10)
    default = compute_profile(conn, IntegrationConfig(), ProfileSettings(), as_of)
    assert default["purchases"] == 2  # canceled and NULL status are not purchases
    only_1 = compute_profile(conn, IntegrationConfig(sales_channels=["1"]), ProfileSettings(), as_of)
    assert only_1["purchases"] == 1
    strict = compute_profile(
        conn, IntegrationConfig(), ProfileSettings(excluded_statuses=["Handling"]), as_of
    )
    assert strict["purchases"] == 2  # canceled counts now; handling does not
    assert conn.execute("SELECT orders_30d FROM customer_profile").fetchone() == (2,)


def test_a_backfill_of_an_older_date_leaves_an_edited_marts_latest_profile_alone(conn, tmp_path, monkeypatch):
    """An operator may add a column to the mart (VTEX_PIPELINE_SQL_DIR): the newest profile keeps it, and a
    backfill of an older date writes history only, as with the shipped mart."""
    import shutil

    from vtex_pipeline.warehouse.sql_files import sql_dir

    edited = tmp_path / "sql"
    shutil.copytree(sql_dir(), edited)
    mart = edited / "marts" / "customer_profile.sql"
    text = mart.read_text(encoding="utf-8")
    assert "    pr.churn_risk\nFROM stg_customers c" in text
    mart.write_text(
        text.replace(
            "    pr.churn_risk\nFROM stg_customers c",
            "    pr.churn_risk,\n    42 AS loyalty_tier\nFROM stg_customers c",
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("VTEX_PIPELINE_SQL_DIR", str(edited))
    now = datetime(2025, 1, 10, 12, tzinfo=UTC)
    insert_rows(conn, "raw_customers", [{"customer_id": "c1", "user_id": "u1", "created_in": now,
                                          "partition_key": "p", "synced_at": now, "record": "{}"}])  # fmt: skip
    insert_rows(conn, "raw_orders", [{"order_id": "o1", "creation_date": now, "creation_date_raw": "x",
                                      "status": "invoiced", "sales_channel": "1", "value_cents": 100,
                                      "user_profile_id": "u1", "partition_key": "p", "synced_at": now,
                                      "record": "{}"}])  # fmt: skip
    newest = compute_profile(conn, IntegrationConfig(), ProfileSettings(), date(2025, 1, 20))
    older = compute_profile(conn, IntegrationConfig(), ProfileSettings(), date(2025, 1, 15))
    assert newest["wrote_latest"] and not older["wrote_latest"]
    assert conn.execute(
        "SELECT as_of, loyalty_tier, days_since_last_purchase FROM customer_profile"
    ).fetchall() == [(date(2025, 1, 20), 42, 10)]
    assert conn.execute("SELECT as_of FROM customer_profile_history ORDER BY 1").fetchall() == [
        (date(2025, 1, 15),),
        (date(2025, 1, 20),),
    ]
