"""Predictions of the profile as of D (docs/attributes.md, docs/predictions.md): fit, score, back-test, and the tables they write.

Runs inside `compute_profile`, after the intermediate SQL and before the mart: the purchase days are the
profile's own purchases (`int_purchases`: same statuses, sales channels and customer resolution, purchase
date in the store time zone), merged per (customer, date) by `predictions/summaries.sql`. The fit reads
the summary grouped on (x, t_x, T) in SQL; scoring is vectorized numpy; the scores land in the TEMP table
`int_predictions` (ckey + the prediction columns) that the mart LEFT JOINs, so customers without a
purchase, and everyone when no fit is usable, get NULLs.

Tables written with the profile (delete-then-insert per as_of, in the profile's transaction):
`clv_model`, `clv_runs` (one row per as_of: status, reason, back-test totals) and `clv_backtest`
(per week of the holdout: predicted and actual repeat purchase days).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from vtex_pipeline.predictions.bgnbd import TransactionParams, expected_repeat_purchases
from vtex_pipeline.predictions.fit import (
    FitResult,
    PredictionSettings,
    fit_spend_model,
    fit_transaction_model,
    insufficient_data_reason,
)
from vtex_pipeline.predictions.gamma_gamma import SpendParams
from vtex_pipeline.predictions.names import PREDICTION_COLUMNS
from vtex_pipeline.predictions.scoring import score_fits
from vtex_pipeline.predictions.summaries import summary_sql
from vtex_pipeline.profile.prediction_report import BACKTEST_SUMMARY_TABLE, PREDICTIONS_TABLE, SUMMARY_TABLE
from vtex_pipeline.profile.reference import Reference
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.schema import create_or_extend

# The profile's purchases as the summary SQL wants them (value in currency; same-day rows merged there).
_PURCHASE_DAYS = """
CREATE OR REPLACE TEMP VIEW purchase_days AS
SELECT ckey AS customer_id, purchase_date, value_cents / 100.0 AS value FROM int_purchases
"""
_PREDICTIONS_DDL = f"""
CREATE OR REPLACE TEMP TABLE {PREDICTIONS_TABLE} (
    ckey BIGINT,
    p_alive DOUBLE,
    expected_orders_30d DOUBLE,
    expected_orders_90d DOUBLE,
    expected_orders_365d DOUBLE,
    expected_avg_order_value DECIMAL(18, 2),
    predicted_clv_365d DECIMAL(18, 2),
    expected_next_order_date DATE,
    avg_days_between_orders DOUBLE,
    churn_risk VARCHAR
)
"""
CLV_TABLES_DDL = (
    """CREATE TABLE IF NOT EXISTS clv_model (
           as_of DATE NOT NULL, model VARCHAR NOT NULL, params VARCHAR NOT NULL, log_likelihood DOUBLE,
           customers BIGINT, PRIMARY KEY (as_of, model))""",
    """CREATE TABLE IF NOT EXISTS clv_runs (
           as_of DATE PRIMARY KEY, model VARCHAR, status VARCHAR, reason VARCHAR, buyers BIGINT,
           repeat_buyers BIGINT, seconds DOUBLE, backtest_status VARCHAR, backtest_reason VARCHAR,
           backtest_start DATE, backtest_customers BIGINT, backtest_predicted DOUBLE,
           backtest_actual BIGINT, backtest_params VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS clv_backtest (
           as_of DATE NOT NULL, week INTEGER NOT NULL, period_start DATE, period_end DATE,
           predicted DOUBLE, actual BIGINT, PRIMARY KEY (as_of, week))""",
)


def _counts(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    n, repeat = conn.execute(f"SELECT count(*), count(*) FILTER (WHERE x > 0) FROM {table}").fetchone()
    return int(n), int(repeat or 0)


def _summarize(conn: duckdb.DuckDBPyConnection, table: str, as_of: date) -> tuple[int, int]:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS\n{summary_sql()}", {"as_of": as_of})
    return _counts(conn, table)


def _grouped(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, np.ndarray]:
    """The summary grouped exactly on (x, t_x, T) with the buyers per row: what the fit reads."""
    return conn.execute(
        f'SELECT x::DOUBLE AS x, t_x::DOUBLE AS t_x, "T"::DOUBLE AS "T", count(*)::DOUBLE AS w '
        f'FROM {table} GROUP BY x, t_x, "T" ORDER BY x, t_x, "T"'
    ).fetchnumpy()


def _fit_json(fit: FitResult) -> dict[str, Any]:
    out: dict[str, Any] = {"model": fit.model, "customers": fit.customers, "ok": fit.ok}
    if fit.ok:
        out["params"] = fit.params_json()
        out["log_likelihood"] = float(fit.log_likelihood)  # type: ignore[arg-type]
    else:
        out["reason"] = fit.reason
    if fit.excluded:
        out["excluded"] = fit.excluded
    return out


def _score(
    conn: duckdb.DuckDBPyConnection,
    as_of: date,
    ps: PredictionSettings,
    transaction: FitResult,
    spend: FitResult,
) -> None:
    s = conn.execute(
        f'SELECT customer_id, x::DOUBLE AS x, t_x::DOUBLE AS t_x, "T"::DOUBLE AS "T", '
        f"coalesce(m, 'NaN'::DOUBLE) AS m FROM {SUMMARY_TABLE}"
    ).fetchnumpy()
    scores = score_fits(s, transaction, spend, settings=ps, as_of=as_of)
    frame = pd.DataFrame({"ckey": np.asarray(s["customer_id"]), **{c: scores[c] for c in PREDICTION_COLUMNS}})
    conn.register("_clv_scores", frame)
    try:
        conn.execute(
            f"""INSERT INTO {PREDICTIONS_TABLE}
                SELECT ckey, p_alive, expected_orders_30d, expected_orders_90d, expected_orders_365d,
                       expected_avg_order_value, predicted_clv_365d, expected_next_order_date::DATE,
                       CASE WHEN NOT isnan(avg_days_between_orders) THEN avg_days_between_orders END,
                       churn_risk
                FROM _clv_scores"""
        )
    finally:
        conn.unregister("_clv_scores")


def backtest(
    conn: duckdb.DuckDBPyConnection, as_of: date, days: int, ps: PredictionSettings
) -> dict[str, Any]:
    """Fit as of D - days on the purchases up to then; predict the repeat purchase days of the buyers of
    that date in (D - days, D], per week, and count what they did. Reads the `purchase_days` view."""
    start = as_of - timedelta(days=days)
    n, repeat = _summarize(conn, BACKTEST_SUMMARY_TABLE, start)
    out: dict[str, Any] = {"start": start, "customers": n, "weeks": []}
    why = insufficient_data_reason(n, repeat, ps)
    if why:
        return {**out, "status": "skipped", "reason": f"as of {start}: {why}"}
    g = _grouped(conn, BACKTEST_SUMMARY_TABLE)
    fit = fit_transaction_model(g["x"], g["t_x"], g["T"], g["w"], model=ps.model)
    if not fit.ok:
        return {**out, "status": "failed", "reason": f"fit as of {start}: {fit.reason}"}
    ends = [*range(7, days, 7), days]
    cumulative = [
        float(g["w"] @ expected_repeat_purchases(ps.model, fit.params, g["x"], g["t_x"], g["T"], e))  # type: ignore[arg-type]
        for e in ends
    ]
    actual = dict(
        conn.execute(
            f"""SELECT (date_diff('day', $start::DATE, purchase_date) - 1) // 7 + 1 AS week, count(*)
                FROM (SELECT DISTINCT customer_id, purchase_date FROM purchase_days
                      WHERE purchase_date > $start::DATE AND purchase_date <= $as_of::DATE) d
                WHERE customer_id IN (SELECT customer_id FROM {BACKTEST_SUMMARY_TABLE})
                GROUP BY 1""",
            {"start": start, "as_of": as_of},
        ).fetchall()
    )
    previous, weeks = 0.0, []
    for i, (end, cum) in enumerate(zip(ends, cumulative, strict=True), start=1):
        weeks.append(
            {
                "week": i,
                "period_start": start + timedelta(days=(ends[i - 2] if i > 1 else 0) + 1),
                "period_end": start + timedelta(days=end),
                "predicted": float(cum - previous),
                "actual": int(actual.get(i, 0)),
            }
        )
        previous = cum
    predicted, observed = float(cumulative[-1]), int(sum(w["actual"] for w in weeks))
    share = abs(predicted - observed) / observed if observed else None
    return {
        **out,
        "status": "fitted",
        "reason": None,
        "params": fit.params_json(),
        "predicted": predicted,
        "actual": observed,
        "share": share,
        "weeks": weeks,
    }


def empty_predictions(conn: duckdb.DuckDBPyConnection) -> None:
    """An empty `int_predictions` (the mart joins it): every prediction column NULL, nothing fitted."""
    conn.execute(_PREDICTIONS_DDL)


def compute_predictions(
    conn: duckdb.DuckDBPyConnection, as_of: date, settings: ProfileSettings
) -> dict[str, Any]:
    """Fit and score as of D into the TEMP table `int_predictions` (empty when no fit is usable) and run the
    back-test; returns what `write_prediction_tables` stores and the metadata shows."""
    started = time.perf_counter()
    ps = settings.prediction_settings()
    conn.execute(_PURCHASE_DAYS)
    conn.execute(_PREDICTIONS_DDL)
    n, repeat = _summarize(conn, SUMMARY_TABLE, as_of)
    info: dict[str, Any] = {
        "model": ps.model,
        "buyers": n,
        "repeat_buyers": repeat,
        "status": "skipped",
        "reason": None,
        "fits": [],
    }
    why = insufficient_data_reason(n, repeat, ps)
    if why:
        info["reason"] = why
    else:
        try:
            g = _grouped(conn, SUMMARY_TABLE)
            transaction = fit_transaction_model(g["x"], g["t_x"], g["T"], g["w"], model=ps.model)
            sp = conn.execute(f"SELECT x::DOUBLE AS x, m FROM {SUMMARY_TABLE} WHERE x > 0").fetchnumpy()
            spend = fit_spend_model(sp["x"], sp["m"])
            info["fits"] = [_fit_json(transaction), _fit_json(spend)]
            failed = [f.reason for f in (transaction, spend) if not f.ok]
            if failed:
                info["status"], info["reason"] = "failed", "; ".join(str(r) for r in failed)
            else:
                _score(conn, as_of, ps, transaction, spend)
                info["status"] = "fitted"
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            info["status"], info["reason"] = "failed", f"{ps.model}: {exc}"
    info["fit_seconds"] = round(time.perf_counter() - started, 3)
    try:
        if info["status"] == "failed":
            # the same data minus 90 days fail the same way (and a failing fit is the slow case: the
            # optimizer walks to the bounds), so the back-test is not attempted
            info["backtest"] = {
                "status": "skipped",
                "reason": "the fit as of D failed",
                "weeks": [],
                "customers": 0,
            }
        else:
            info["backtest"] = backtest(conn, as_of, settings.backtest_days, ps)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        info["backtest"] = {"status": "failed", "reason": str(exc), "weeks": [], "customers": 0}
    info["backtest"]["warn_share"] = settings.backtest_warn_share
    info["seconds"] = round(time.perf_counter() - started, 3)
    return info


def score_with_reference(
    conn: duckdb.DuckDBPyConnection, as_of: date, settings: ProfileSettings, reference: Reference
) -> dict[str, Any]:
    """Score as of `as_of` with the parameters fitted by the daily run of `reference.as_of` (no fit, no
    back-test) into `int_predictions`; empty when that run had no usable fit, as the daily profile is."""
    started = time.perf_counter()
    ps = settings.prediction_settings()
    conn.execute(_PURCHASE_DAYS)
    conn.execute(_PREDICTIONS_DDL)
    n, repeat = _summarize(conn, SUMMARY_TABLE, as_of)
    info: dict[str, Any] = {"model": reference.transaction_model or ps.model, "buyers": n,
                            "repeat_buyers": repeat, "status": "skipped", "reason": None, "fits": []}  # fmt: skip
    if not reference.has_predictions:
        info["reason"] = f"the daily run of {reference.as_of} has no usable fit"
    elif n:
        model = reference.transaction_model or ps.model
        transaction = FitResult(model, TransactionParams(**reference.transaction_params), None, 0, True)  # type: ignore[arg-type]
        spend = FitResult("gamma_gamma", SpendParams(**reference.spend_params), None, 0, True)  # type: ignore[arg-type]
        _score(conn, as_of, dataclasses.replace(ps, model=model), transaction, spend)
        info["status"] = "reference"
    info["seconds"] = round(time.perf_counter() - started, 3)
    return info


def write_prediction_tables(conn: duckdb.DuckDBPyConnection, as_of: date, info: dict[str, Any]) -> None:
    """clv_model, clv_runs and clv_backtest for D: delete then insert (call inside the profile's
    transaction). clv_model gets rows only for fits the predictions were computed with."""
    for ddl in CLV_TABLES_DDL:
        create_or_extend(conn, ddl)
    for table in ("clv_model", "clv_runs", "clv_backtest"):
        conn.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
    if info["status"] == "fitted":
        conn.executemany(
            "INSERT INTO clv_model VALUES (?, ?, ?, ?, ?)",
            [
                [as_of, f["model"], json.dumps(f["params"]), f["log_likelihood"], f["customers"]]
                for f in info["fits"]
            ],
        )
    bt = info.get("backtest") or {}
    conn.execute(
        "INSERT INTO clv_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            as_of,
            info["model"],
            info["status"],
            info["reason"],
            info["buyers"],
            info["repeat_buyers"],
            info["seconds"],
            bt.get("status"),
            bt.get("reason"),
            bt.get("start"),
            bt.get("customers"),
            bt.get("predicted"),
            bt.get("actual"),
            json.dumps(bt["params"]) if bt.get("params") else None,
        ],
    )
    if bt.get("weeks"):
        conn.executemany(
            "INSERT INTO clv_backtest VALUES (?, ?, ?, ?, ?, ?)",
            [
                [as_of, w["week"], w["period_start"], w["period_end"], w["predicted"], w["actual"]]
                for w in bt["weeks"]
            ],
        )
