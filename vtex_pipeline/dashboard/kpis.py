"""Compute the dashboard's KPI tables (`dash_*`) in DuckDB from the raw layer and the profile.

Plain Python, no Dagster: the asset, the tests and anyone with the DuckDB file can call `compute_kpis`.
Purchases, buyers and item names come from the profile's own staging tables (`stg_*`, built once per
sync and shared: see `profile/models.py`), so the dashboard and the profile agree on what a purchase, a
customer and a product name are. The tables are
written to the file in one transaction (a reader sees the previous refresh or this one, never half), and
the page (`render.py`) reads only them: what the page shows is exactly what is in DuckDB.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile.compute import (
    RESULT_TABLE,
    compute_profile,
    drop_intermediates,
    sql_parameters,
)
from vtex_pipeline.profile.models import MODELS, build_staging_layer, is_stored, run_sql_file
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import transaction

STAGING = tuple(m.name for m in MODELS if not m.per_day)
DASH_STEPS = (
    "dashboard/dash_purchases.sql",
    "dashboard/dash_daily_sales.sql",
    "dashboard/dash_summary.sql",
    "dashboard/dash_top_items.sql",
    "dashboard/dash_segments.sql",
    "dashboard/dash_segment_transitions.sql",
    "dashboard/dash_predictions.sql",
    "dashboard/dash_freshness.sql",
    "dashboard/dash_info.sql",
)
DASH_TABLES = (
    "dash_info",
    "dash_summary",
    "dash_daily_sales",
    "dash_top_items",
    "dash_segments",
    "dash_segment_transitions",
    "dash_predictions",
    "dash_backtest",
    "dash_prediction_info",
    "dash_freshness",
)
SCRATCH_TABLES = ("dash_purchases", "dash_cancellations", "dash_previous_profile")
PERIOD_DAYS = 30
TOP_N = 10

# Tables other assets write, which may not exist yet (no profile computed, icomm not configured):
# an empty TEMP view of the same name stands in, so the SQL needs no "if exists" and the panels read
# "no profile yet" instead of failing. TEMP objects shadow nothing: they are created only when the table
# is missing, and dropped at the end.
STAND_INS = {
    "customer_profile": "SELECT NULL::DATE AS as_of, NULL::VARCHAR AS customer_id, "
    "NULL::VARCHAR AS rfm_group, NULL::VARCHAR AS rfm_segment WHERE false",
    "customer_profile_history": "SELECT NULL::DATE AS as_of, NULL::VARCHAR AS customer_id, "
    "NULL::VARCHAR AS rfm_group, NULL::VARCHAR AS rfm_segment WHERE false",
    "customer_profile_runs": "SELECT NULL::DATE AS as_of, NULL::TIMESTAMPTZ AS computed_at WHERE false",
    "icomm_sent": "SELECT NULL::VARCHAR AS email, NULL::TIMESTAMPTZ AS sent_at WHERE false",
    "clv_backtest": "SELECT NULL::DATE AS as_of, NULL::INTEGER AS week, NULL::DATE AS period_start, "
    "NULL::DATE AS period_end, NULL::DOUBLE AS predicted, NULL::BIGINT AS actual WHERE false",
    "clv_runs": "SELECT NULL::DATE AS as_of, NULL::VARCHAR AS model, NULL::VARCHAR AS status, "
    "NULL::VARCHAR AS reason, NULL::BIGINT AS buyers, NULL::VARCHAR AS backtest_status, "
    "NULL::VARCHAR AS backtest_reason, NULL::DATE AS backtest_start, NULL::DOUBLE AS backtest_predicted, "
    "NULL::BIGINT AS backtest_actual WHERE false",
}
PREDICTION_SOURCE_COLUMNS = ("p_alive", "expected_orders_365d", "predicted_clv_365d", "churn_risk")
_PREDICTION_NULLS = (
    "NULL::DOUBLE AS p_alive, NULL::DOUBLE AS expected_orders_365d, "
    "NULL::DECIMAL(18, 2) AS predicted_clv_365d, NULL::VARCHAR AS churn_risk"
)


def _prediction_source(conn: duckdb.DuckDBPyConnection) -> None:
    """TEMP view dash_prediction_source over customer_profile; NULL predictions when the profile was
    computed before they existed (the dashboard may refresh before the first profile after an upgrade)."""
    have = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'customer_profile'"
        ).fetchall()
    }
    cols = (
        ", ".join(PREDICTION_SOURCE_COLUMNS) if set(PREDICTION_SOURCE_COLUMNS) <= have else _PREDICTION_NULLS
    )
    conn.execute(
        "CREATE OR REPLACE TEMP VIEW dash_prediction_source AS "
        f"SELECT rfm_group, rfm_segment, {cols} FROM customer_profile"
    )


def dashboard_path(cfg: IntegrationConfig) -> Path:
    """The page lives next to the DuckDB file: `data/vtex.duckdb` -> `data/vtex.dashboard.html`."""
    return Path(cfg.duckdb_path).with_suffix(".dashboard.html")


def _previous_profile(
    conn: duckdb.DuckDBPyConnection, cfg: IntegrationConfig, settings: ProfileSettings, recompute: bool
) -> tuple[date | None, str | None]:
    """Fill TEMP `dash_previous_profile` (customer_id, group, segment) with the profile before the latest.

    It is the previous date in `customer_profile_history`. On the very first profile there is none: then,
    if `recompute`, the profile of the day before is computed in memory (nothing written) so the
    transitions panel is not empty on day one; it costs one profile computation, once.
    """
    empty = "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS rfm_group, NULL::VARCHAR AS rfm_segment"
    latest = conn.execute("SELECT max(as_of) FROM customer_profile_runs").fetchone()[0]
    if latest is None:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE dash_previous_profile AS {empty} WHERE false")
        return None, None
    previous = conn.execute(
        "SELECT max(as_of) FROM customer_profile_history WHERE as_of < ?", [latest]
    ).fetchone()[0]
    if previous is not None:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE dash_previous_profile AS SELECT customer_id, rfm_group, rfm_segment "
            "FROM customer_profile_history WHERE as_of = ?",
            [previous],
        )
        return previous, "history"
    if not recompute:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE dash_previous_profile AS {empty} WHERE false")
        return None, None
    previous = latest - timedelta(days=1)
    compute_profile(
        conn, cfg, settings, previous, write=False, keep_intermediates=True, predict=False, staging=False
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE dash_previous_profile AS "
        f"SELECT customer_id, rfm_group, rfm_segment FROM temp.{RESULT_TABLE}"
    )
    drop_intermediates(conn)
    return previous, "recomputed"


def compute_kpis(
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    as_of: date | None = None,
    *,
    settings: ProfileSettings | None = None,
    now: datetime | None = None,
    recompute_previous: bool = True,
) -> dict[str, Any]:
    """Write the `dash_*` tables for day `as_of` (default: today in the store time zone) and return
    their row counts and timings. The connection must be prepared (`warehouse.connection.prepare`).
    The shared staging tables are rebuilt first only where they are missing or not current
    (`profile.models.build_staging`): after the sync, a few counts."""
    started = time.perf_counter()
    settings = settings or ProfileSettings()
    now = now or datetime.now(UTC)
    as_of = as_of or now.astimezone(ZoneInfo(cfg.timezone)).date()
    stand_ins = [t for t in STAND_INS if not is_stored(conn, t)]
    for t in stand_ins:
        conn.execute(f"CREATE OR REPLACE TEMP VIEW {t} AS {STAND_INS[t]}")
    steps: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        # kept when current (the Dagster asset depends on them): a few counts
        build_staging_layer(conn, sql_parameters(cfg, settings, as_of))
        steps["staging"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        previous_as_of, previous_source = _previous_profile(conn, cfg, settings, recompute_previous)
        steps["previous_profile"] = round(time.perf_counter() - t0, 3)
        params = {
            **sql_parameters(cfg, settings, as_of),
            "now": now,
            "period_days": PERIOD_DAYS,
            "top_n": TOP_N,
            "previous_as_of": previous_as_of,
            "previous_source": previous_source,
            "integration": cfg.name,
        }
        _prediction_source(conn)
        with transaction(conn):
            for rel in DASH_STEPS:
                t0 = time.perf_counter()
                run_sql_file(conn, rel, params)
                steps[rel] = round(time.perf_counter() - t0, 3)
        counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in DASH_TABLES}
    finally:
        for t in SCRATCH_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
        drop_intermediates(conn)  # the TEMP models of the day before, when it was recomputed
        for t in (*stand_ins, "dash_prediction_source"):
            conn.execute(f"DROP VIEW IF EXISTS temp.{t}")
    return {
        "as_of": as_of,
        "computed_at": now,
        "previous_profile_as_of": previous_as_of,
        "previous_profile_source": previous_source,
        "missing_tables": stand_ins,
        "row_counts": counts,
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 3),
    }
