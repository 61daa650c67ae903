"""The KPI tables of a hand-made raw layer (no HTTP, no browser), worked out by hand below.

Store time zone America/Sao_Paulo (UTC-3), D = 2026-11-20: last 30 days = 10-22 .. 11-20, the previous
30 = 09-22 .. 10-21. Orders:
  o1  Ana    11-20 02:00Z = 11-19 23:00 local  ch 1  100.00  invoiced  items P1 2 x 40.00, P2 1 x 20.00
  o2  Ana    10-01 12:00Z                      ch 1   50.00  invoiced  coupon " old10 " (Ana's first)
  o3  Bruno  11-20 12:00Z                      ch 2   30.00  invoiced  (Bruno's first)
  o4  Bruno  11-21 01:00Z = 11-20 22:00 local  ch 2   70.00  Canceled  -> a cancellation on D
  o5  Bruno  11-21 04:00Z = 11-21 01:00 local  ch 2   90.00  invoiced  -> after D, not counted
  o6  guest  11-10 12:00Z (no CL document)     ch 1   10.00  invoiced  (a buyer of its own, first)
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pytest

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.dashboard.kpis import compute_kpis
from vtex_pipeline.dashboard.render import kpi_markdown, render_html
from vtex_pipeline.warehouse.connection import prepare

D = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 21, 5, tzinfo=UTC)
TZ = "America/Sao_Paulo"


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(":memory:")
    prepare(c)
    for cid, uid in (("cl-ana", "u-ana"), ("cl-bruno", "u-bruno")):
        c.execute(
            "INSERT INTO raw_customers (customer_id, user_id, email, created_in, partition_key, synced_at, record) "
            "VALUES (?, ?, ?, ?, 'k', ?, '{}')",
            [cid, uid, f"{cid}@mail.com", _ts("2025-01-01T00:00:00"), NOW],
        )
    orders = [
        ("o1", "2026-11-20T02:00:00", "1", 10000, None, "u-ana", "invoiced"),
        ("o2", "2026-10-01T12:00:00", "1", 5000, " old10 ", "u-ana", "invoiced"),
        ("o3", "2026-11-20T12:00:00", "2", 3000, "", "u-bruno", "invoiced"),
        ("o4", "2026-11-21T01:00:00", "2", 7000, None, "u-bruno", "Canceled"),
        ("o5", "2026-11-21T04:00:00", "2", 9000, None, "u-bruno", "invoiced"),
        ("o6", "2026-11-10T12:00:00", "1", 1000, None, "u-guest", "invoiced"),
    ]
    for oid, ts, ch, cents, coupon, user, status in orders:
        c.execute(
            "INSERT INTO raw_orders (order_id, creation_date, creation_date_raw, status, sales_channel, value_cents, "
            "coupon, user_profile_id, partition_key, synced_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'k', ?, '{}')",
            [oid, _ts(ts), ts, status, ch, cents, coupon, user, NOW],
        )
    items = [
        ("o1", 0, "P1", "Prod 1", 2, 4000),
        ("o1", 1, "P2", "Prod 2", 1, 2000),
        ("o3", 0, "P2", "Prod 2", 1, 3000),
    ]
    for oid, idx, pid, name, qty, price in items:
        c.execute(
            "INSERT INTO raw_order_items (order_id, item_index, product_id, name, quantity, price_cents, "
            "selling_price_cents, brand_name, category_names, partition_key) VALUES (?, ?, ?, ?, ?, ?, ?, 'Brand', "
            "['Cat'], 'k')",
            [oid, idx, pid, name, qty, price, price],
        )
    for sid, name in (("1", "Loja"), ("2", "App")):
        c.execute(
            "INSERT INTO raw_sales_channels (sales_channel_id, name, currency_code, fetched_at, record) "
            "VALUES (?, ?, 'BRL', ?, ?)",
            [sid, name, _ts("2026-11-20T12:00:00"), json.dumps({"Id": sid})],
        )
    c.execute(
        "INSERT INTO sync_state VALUES ('orders', ?, ?, 'run')",
        [_ts("2026-11-20T12:00:00"), _ts("2026-11-20T12:05:00")],
    )
    return c


def _cfg() -> IntegrationConfig:
    return IntegrationConfig(timezone=TZ, duckdb_path=":memory:")


def _summary(conn, period: str, channel: str = "*") -> tuple:
    return conn.execute(
        "SELECT purchases, revenue_cents, buyers, first_time_buyers, avg_ticket_cents, cancellations "
        "FROM dash_summary WHERE period = ? AND sales_channel = ?",
        [period, channel],
    ).fetchone()


def test_sales_figures_follow_the_store_time_zone_and_the_purchase_rules(conn):
    stats = compute_kpis(conn, _cfg(), D, now=NOW)
    assert set(stats["missing_tables"]) == {
        "customer_profile",
        "customer_profile_history",
        "customer_profile_runs",
        "icomm_sent",
        "clv_backtest",
        "clv_runs",
    }
    assert _summary(conn, "last") == (3, 14000, 3, 2, 4667, 1)
    assert _summary(conn, "previous") == (1, 5000, 1, 1, 5000, 0)
    assert _summary(conn, "last", "2") == (1, 3000, 1, 1, 3000, 1)
    daily = conn.execute(
        "SELECT day, sales_channel, sales_channel_name, purchases, revenue_cents, buyers, first_time_buyers, "
        "cancellations FROM dash_daily_sales ORDER BY ALL"
    ).fetchall()
    assert daily == [
        (date(2026, 10, 1), "1", "Loja", 1, 5000, 1, 1, 0),
        (date(2026, 11, 10), "1", "Loja", 1, 1000, 1, 1, 0),
        (date(2026, 11, 19), "1", "Loja", 1, 10000, 1, 0, 0),
        (date(2026, 11, 20), "2", "App", 1, 3000, 1, 1, 1),
    ]
    top = conn.execute(
        "SELECT kind, window_days, rank, name, purchases, quantity, revenue_cents FROM dash_top_items"
    )
    assert top.fetchall() == [
        ("brand", 30, 1, "Brand", 2, 4, 13000),
        ("category", 30, 1, "Cat", 2, 4, 13000),
        ("coupon", 90, 1, "OLD10", 1, 1, 5000),  # none in 30 days: the list widens to 90
        ("product", 30, 1, "Prod 1", 1, 2, 8000),
        ("product", 30, 2, "Prod 2", 2, 2, 5000),
    ]
    fresh = conn.execute(
        "SELECT source, hours_since_success, watermark_lag_hours, status FROM dash_freshness"
    )
    assert fresh.fetchall() == [("catalog", 9.08, None, "stale"), ("orders", 9.0, 9.08, "stale")]
    assert conn.execute("SELECT count(*) FROM dash_segments").fetchone()[0] == 0
    page = render_html(conn)
    assert 'data-empty="segments"' in page and 'data-empty="transitions"' in page
    assert kpi_markdown(conn)["segments"] == "_no profile yet_"
    assert 'data-empty="predictions"' in page
    assert kpi_markdown(conn)["predictions_by_segment"] == "_no profile yet_"
    # The stand-ins are gone: nothing pretends a profile exists after the run.
    assert not conn.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'customer_profile'"
    ).fetchone()[0]


def _daily_run(conn, day: str = "2026-11-20") -> None:
    """customer_profile_runs as the daily run leaves it: its newest day is the profile's day (rows the
    Orders Feed recomputed since carry a later as_of)."""
    conn.execute(f"CREATE TABLE customer_profile_runs AS SELECT DATE '{day}' AS as_of, now() AS computed_at")


def test_segment_sizes_and_transitions_compare_the_two_latest_profiles(conn):
    _daily_run(conn)
    conn.execute(
        """CREATE TABLE customer_profile AS SELECT * FROM (VALUES
               (DATE '2026-11-20', 'cl-ana', 'G1', 'S1'), (DATE '2026-11-20', 'cl-bruno', 'G2', 'S2'),
               (DATE '2026-11-20', 'cl-new', 'P', 'PROSPECTS')) t(as_of, customer_id, rfm_group, rfm_segment)"""
    )
    conn.execute(
        """CREATE TABLE customer_profile_history AS SELECT * FROM customer_profile UNION ALL
           SELECT * FROM (VALUES (DATE '2026-11-13', 'cl-ana', 'G1', 'S1'), (DATE '2026-11-13', 'cl-bruno', 'G1', 'S1'),
                                 (DATE '2026-11-01', 'cl-ana', 'G2', 'S2')) t(as_of, customer_id, rfm_group, rfm_segment)"""
    )
    stats = compute_kpis(conn, _cfg(), D, now=NOW)
    assert stats["previous_profile_as_of"] == date(2026, 11, 13)
    assert conn.execute(
        "SELECT rfm_segment, customers, share, previous_customers FROM dash_segments ORDER BY 1"
    ).fetchall() == [("PROSPECTS", 1, 0.3333, 0), ("S1", 1, 0.3333, 2), ("S2", 1, 0.3333, 0)]
    assert conn.execute(
        "SELECT from_segment, to_segment, customers FROM dash_segment_transitions ORDER BY 1, 2"
    ).fetchall() == [("(new)", "PROSPECTS", 1), ("S1", "S1", 1), ("S1", "S2", 1)]
    md = kpi_markdown(conn)["segment_transitions"]
    assert "2026-11-13 → 2026-11-20" in md and "| S1 | S2 | 1 |" in md and "| S1 | S1 |" not in md


def test_prediction_tables_sum_the_profile_by_segment_and_show_the_backtest(conn):
    _daily_run(conn)
    conn.execute(
        """CREATE TABLE customer_profile AS SELECT * FROM (VALUES
               (DATE '2026-11-20', 'a', 'G1', 'S1', 0.9::DOUBLE, 2.0::DOUBLE, 150.50::DECIMAL(18,2), 'low'),
               (DATE '2026-11-20', 'b', 'G1', 'S1', 0.5, 1.0, 49.50::DECIMAL(18,2), 'medium'),
               (DATE '2026-11-20', 'c', 'G2', 'S2', 0.1, 0.2, 10.00::DECIMAL(18,2), 'high'),
               (DATE '2026-11-20', 'd', 'P', 'PROSPECTS', NULL, NULL, NULL, NULL))
           t(as_of, customer_id, rfm_group, rfm_segment, p_alive, expected_orders_365d, predicted_clv_365d,
             churn_risk)"""
    )
    conn.execute(
        """CREATE TABLE clv_runs AS SELECT DATE '2026-11-20' AS as_of, 'mbgnbd' AS model, 'fitted' AS status,
               NULL::VARCHAR AS reason, 3::BIGINT AS buyers, 'fitted' AS backtest_status,
               NULL::VARCHAR AS backtest_reason, DATE '2026-08-22' AS backtest_start,
               11.04::DOUBLE AS backtest_predicted, 10::BIGINT AS backtest_actual"""
    )
    conn.execute(
        """CREATE TABLE clv_backtest AS SELECT * FROM (VALUES
               (DATE '2026-11-20', 1, DATE '2026-08-23', DATE '2026-08-29', 6.04::DOUBLE, 4::BIGINT),
               (DATE '2026-11-20', 2, DATE '2026-08-30', DATE '2026-09-05', 5.0::DOUBLE, 6::BIGINT),
               (DATE '2026-11-13', 1, DATE '2026-08-16', DATE '2026-08-22', 1.0::DOUBLE, 1::BIGINT))
           t(as_of, week, period_start, period_end, predicted, actual)"""
    )
    compute_kpis(conn, _cfg(), D, now=NOW)
    assert conn.execute(
        "SELECT rfm_segment, customers, predicted_customers, expected_revenue_365d, expected_orders_365d, "
        "churn_low, churn_medium, churn_high FROM dash_predictions"
    ).fetchall() == [
        ("S1", 2, 2, Decimal("200.00"), 3.0, 1, 1, 0),
        ("S2", 1, 1, Decimal("10.00"), 0.2, 0, 0, 1),
        ("PROSPECTS", 1, 0, None, None, 0, 0, 0),
    ]
    assert conn.execute("SELECT week, predicted, actual FROM dash_backtest").fetchall() == [
        (1, 6.0, 4),
        (2, 5.0, 6),
    ]
    assert conn.execute("SELECT model, backtest_share FROM dash_prediction_info").fetchall() == [
        ("mbgnbd", 0.104)
    ]
    page = render_html(conn)
    assert 'data-kpi="prediction.S1.expected_revenue_365d" data-value="200.00">200.00<' in page
    assert 'data-kpi="prediction.S2.churn_high" data-value="1"' in page
    assert 'data-kpi="backtest.2.actual" data-value="6"' in page
    assert 'data-chart="backtest"' in page and 'data-chart="expected_revenue"' in page
    md = kpi_markdown(conn)
    assert "| G1 | S1 | 2 | 200.00 | 3.0 | 1 | 1 | 0 |" in md["predictions_by_segment"]
    assert "predicted 11.0, actual 10" in md["predictions_backtest"]
    assert "| 2 | 2026-08-30 – 2026-09-05 | 5.0 | 6 |" in md["predictions_backtest"]


def test_prediction_panels_say_why_when_the_store_is_too_small(conn):
    _daily_run(conn)
    conn.execute(
        """CREATE TABLE customer_profile AS SELECT DATE '2026-11-20' AS as_of, 'a' AS customer_id,
               'G1' AS rfm_group, 'S1' AS rfm_segment"""
    )  # a profile from before the predictions: no columns, NULLs on the page
    conn.execute(
        """CREATE TABLE clv_runs AS SELECT DATE '2026-11-20' AS as_of, 'mbgnbd' AS model, 'skipped' AS status,
               '7 buyers, fewer than the 500 needed to fit (min_buyers)' AS reason, 7::BIGINT AS buyers,
               'skipped' AS backtest_status, 'as of 2026-08-22: too small' AS backtest_reason,
               NULL::DATE AS backtest_start, NULL::DOUBLE AS backtest_predicted, NULL::BIGINT AS backtest_actual"""
    )
    compute_kpis(conn, _cfg(), D, now=NOW)
    assert conn.execute(
        "SELECT rfm_segment, customers, predicted_customers FROM dash_predictions"
    ).fetchall() == [("S1", 1, 0)]
    page = render_html(conn)
    assert "fewer than the 500 needed to fit" in page
    assert "fewer than the 500" in kpi_markdown(conn)["predictions_by_segment"]
