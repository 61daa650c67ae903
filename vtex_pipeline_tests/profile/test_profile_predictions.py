"""Predictions in the profile (docs/attributes.md, docs/predictions.md): a store simulated from known MBG/NBD and Gamma-Gamma
parameters, written as raw orders, run through `compute_profile` and the Dagster asset and checks.

Expected values are recomputed independently: purchase days from the generated orders in pandas
(`summaries_from_purchases`), the fit on them, the library's scores for the fitted parameters.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from vtex_pipeline.assets.profile import build_profile_assets
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.predictions import (
    PREDICTION_COLUMNS,
    expected_repeat_purchases,
    fit_spend_model,
    fit_transaction_model,
    score_customers,
    summaries_from_purchases,
)
from vtex_pipeline.predictions.fit import FitResult, PredictionSettings
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.profile import predictions as profile_predictions
from vtex_pipeline.resources import resources_for
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline.warehouse.raw_loads import insert_rows

D = date(2025, 6, 30)
# MBG/NBD in days, Gamma-Gamma in currency: the store's "true" parameters.
R, ALPHA, A, B = 0.8, 40.0, 0.6, 2.5
P, Q, GAMMA = 4.0, 3.0, 60.0


def simulate_orders(n: int, seed: int) -> pd.DataFrame:
    """One row per order: customer, creation time (UTC), value. First purchases uniform over 2 years
    before D; each purchase is followed by dropout with probability p (MBG/NBD), else the next purchase
    after Exp(lambda); a few purchase days hold two orders (merged into one purchase day)."""
    rng = np.random.default_rng(seed)
    end = 730.0
    rows = []
    for i in range(n):
        lam, p = rng.gamma(R, 1.0 / ALPHA), rng.beta(A, B)
        nu = rng.gamma(Q, 1.0 / GAMMA)
        t = rng.uniform(0.0, end)
        while t <= end:
            rows.append((f"cl-{i:05d}", t, round(float(rng.gamma(P, 1.0 / nu)), 2)))
            if rng.random() < 0.05:  # a second order the same day
                rows.append((f"cl-{i:05d}", math.floor(t) + 0.99, 10.0))
            if rng.random() < p:
                break
            t += rng.exponential(1.0 / lam)
    frame = pd.DataFrame(rows, columns=["customer_id", "t", "value"])
    start = datetime.combine(D, datetime.min.time(), tzinfo=UTC) - timedelta(days=end - 1)
    frame["created"] = [start + timedelta(days=float(t)) for t in frame["t"]]
    frame = frame[frame["created"] < datetime.combine(D + timedelta(days=1), datetime.min.time(), tzinfo=UTC)]
    frame["purchase_date"] = [c.date() for c in frame["created"]]
    return frame.reset_index(drop=True)


def write_store(conn: duckdb.DuckDBPyConnection, orders: pd.DataFrame, extra_customers: int = 1) -> None:
    created = datetime(2023, 1, 1, tzinfo=UTC)
    ids = sorted(set(orders["customer_id"])) + [f"cl-none-{k}" for k in range(extra_customers)]
    insert_rows(
        conn,
        "raw_customers",
        [
            {"customer_id": c, "user_id": f"u-{c}", "email": f"{c}@example.com", "created_in": created,
             "partition_key": "p", "synced_at": created, "record": "{}"}
            for c in ids
        ],
    )  # fmt: skip
    insert_rows(
        conn,
        "raw_orders",
        [
            {"order_id": f"o{k}", "creation_date": row.created, "creation_date_raw": "x", "status": "invoiced",
             "sales_channel": "1", "value_cents": round(row.value * 100), "user_profile_id": f"u-{row.customer_id}",
             "partition_key": "p", "synced_at": created, "record": "{}"}
            for k, row in enumerate(orders.itertuples())
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("pred") / "store.duckdb"
    orders = simulate_orders(2500, seed=7)
    conn = duckdb.connect(str(path))
    prepare(conn)
    write_store(conn, orders)
    stats = compute_profile(
        conn, IntegrationConfig(duckdb_path=str(path)), ProfileSettings(clv_model="mbgnbd"), D
    )
    conn.close()
    return {"path": path, "orders": orders, "stats": stats}


def _read(path: Path, sql: str, params=None):
    with duckdb.connect(str(path), read_only=True) as c:
        return c.execute(sql, params or []).fetchall()


def test_columns_are_the_library_scores_for_the_fitted_parameters(store):
    info = store["stats"]["predictions"]
    assert info["status"] == "fitted", info
    summary = summaries_from_purchases(store["orders"], D)
    assert info["buyers"] == len(summary) and info["repeat_buyers"] == int((summary["x"] > 0).sum())
    # the independent fit on pandas summaries gives the recorded parameters
    grouped = summary.groupby(["x", "t_x", "T"]).size().reset_index(name="w")
    transaction = fit_transaction_model(
        grouped["x"], grouped["t_x"], grouped["T"], grouped["w"], model="mbgnbd"
    )
    spend = fit_spend_model(summary["x"], summary["m"])
    rows = dict(
        (model, (json.loads(params), ll, n))
        for model, params, ll, n in _read(
            store["path"], "SELECT model, params, log_likelihood, customers FROM clv_model"
        )
    )
    assert sorted(rows) == ["gamma_gamma", "mbgnbd"]
    for fit in (transaction, spend):
        params, ll, n = rows[fit.model]
        assert n == fit.customers
        assert ll == pytest.approx(fit.log_likelihood, rel=1e-9)
        for k, v in fit.params_json().items():
            assert params[k] == pytest.approx(v, rel=1e-6), (fit.model, k)
    assert rows["mbgnbd"][0]["r"] == pytest.approx(R, rel=0.25)
    assert rows["mbgnbd"][0]["alpha"] == pytest.approx(ALPHA, rel=0.35)
    assert rows["gamma_gamma"][0]["p"] == pytest.approx(P, rel=0.3)

    scores = score_customers(
        summary["x"], summary["t_x"], summary["T"], summary["m"],
        transaction=transaction.params, spend=spend.params, model="mbgnbd", as_of=D,
    )  # fmt: skip
    cols = ", ".join(PREDICTION_COLUMNS)
    got = {
        r[0]: r[1:]
        for r in _read(
            store["path"],
            f"SELECT customer_id, {cols} FROM customer_profile WHERE first_purchase_date IS NOT NULL",
        )
    }
    assert sorted(got) == sorted(summary.index)
    for i, cid in enumerate(summary.index):
        row = dict(zip(PREDICTION_COLUMNS, got[cid], strict=True))
        for c in ("p_alive", "expected_orders_30d", "expected_orders_90d", "expected_orders_365d"):
            assert row[c] == pytest.approx(scores[c][i], rel=1e-6, abs=1e-12), (cid, c)
        assert row["expected_avg_order_value"] == pytest.approx(
            Decimal(str(scores["expected_avg_order_value"][i])), abs=Decimal("0.011")
        )
        assert row["predicted_clv_365d"] == pytest.approx(
            Decimal(str(scores["predicted_clv_365d"][i])), abs=Decimal("0.011")
        )
        assert row["expected_next_order_date"] == scores["expected_next_order_date"][i].astype(date), cid
        want_avg = scores["avg_days_between_orders"][i]
        assert (
            (row["avg_days_between_orders"] is None)
            if np.isnan(want_avg)
            else row["avg_days_between_orders"] == want_avg
        )
        assert row["churn_risk"] == scores["churn_risk"][i]
    # hand-checkable rules on one repeat buyer
    cid = summary.index[summary["x"] >= 2][0]
    x, t_x, T = summary.loc[cid, ["x", "t_x", "T"]]
    row = dict(zip(PREDICTION_COLUMNS, got[cid], strict=True))
    assert row["avg_days_between_orders"] == round(t_x / x, 1)
    r, alpha = rows["mbgnbd"][0]["r"], rows["mbgnbd"][0]["alpha"]
    assert row["expected_next_order_date"] == D + timedelta(
        days=round((alpha + T) * (2 ** (1 / (r + x)) - 1))
    )
    assert row["predicted_clv_365d"] == pytest.approx(
        Decimal(str(round(row["expected_orders_365d"] * float(row["expected_avg_order_value"]), 2))),
        abs=Decimal("0.011"),
    )
    assert row["churn_risk"] == (
        "low" if row["p_alive"] >= 0.7 else "medium" if row["p_alive"] >= 0.3 else "high"
    )


def test_customers_without_a_purchase_get_nulls_and_history_keeps_the_columns(store):
    cols = ", ".join(f"{c} IS NULL" for c in PREDICTION_COLUMNS)
    assert _read(store["path"], f"SELECT {cols} FROM customer_profile WHERE customer_id = 'cl-none-0'") == [
        (True,) * len(PREDICTION_COLUMNS)
    ]
    assert _read(
        store["path"],
        """SELECT count(*) FROM customer_profile p JOIN customer_profile_history h USING (customer_id)
           WHERE p.p_alive IS DISTINCT FROM h.p_alive OR p.churn_risk IS DISTINCT FROM h.churn_risk
              OR p.predicted_clv_365d IS DISTINCT FROM h.predicted_clv_365d""",
    ) == [(0,)]


def test_backtest_numbers(store):
    bt = store["stats"]["predictions"]["backtest"]
    start = D - timedelta(days=90)
    before = summaries_from_purchases(store["orders"], start)
    grouped = before.groupby(["x", "t_x", "T"]).size().reset_index(name="w")
    fit = fit_transaction_model(grouped["x"], grouped["t_x"], grouped["T"], grouped["w"], model="mbgnbd")
    predicted = float(
        grouped["w"]
        @ expected_repeat_purchases("mbgnbd", fit.params, grouped["x"], grouped["t_x"], grouped["T"], 90)
    )
    later = store["orders"][
        (store["orders"]["purchase_date"] > start) & store["orders"]["customer_id"].isin(before.index)
    ]
    actual = len(later[["customer_id", "purchase_date"]].drop_duplicates())
    assert bt["status"] == "fitted" and bt["customers"] == len(before)
    assert bt["predicted"] == pytest.approx(predicted, rel=1e-9)
    assert bt["actual"] == actual
    assert abs(predicted - actual) / actual < 0.2  # simulated from the model: it predicts its own store
    weeks = _read(
        store["path"],
        "SELECT week, period_start, period_end, predicted, actual FROM clv_backtest ORDER BY week",
    )
    assert len(weeks) == 13 and weeks[0][1:3] == (start + timedelta(days=1), start + timedelta(days=7))
    assert weeks[-1][1:3] == (start + timedelta(days=85), D)
    assert sum(w[3] for w in weeks) == pytest.approx(predicted, rel=1e-9)
    assert sum(w[4] for w in weeks) == actual


def test_too_small_store_is_null_with_the_reason(tmp_path):
    orders = simulate_orders(300, seed=3)
    conn = duckdb.connect()
    prepare(conn)
    write_store(conn, orders)
    stats = compute_profile(conn, IntegrationConfig(), ProfileSettings(), D)
    buyers = orders["customer_id"].nunique()
    assert stats["predictions"]["status"] == "skipped"
    assert stats["predictions"]["reason"] == f"{buyers} buyers, fewer than the 500 needed to fit (min_buyers)"
    assert conn.execute(
        "SELECT count(*) FROM customer_profile WHERE p_alive IS NOT NULL OR churn_risk IS NOT NULL"
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM clv_model").fetchone() == (0,)
    assert conn.execute("SELECT status, reason FROM clv_runs").fetchall() == [
        ("skipped", stats["predictions"]["reason"])
    ]
    # configurable: the same store fits with lower minimums, and the model comes from the environment
    stats = compute_profile(
        conn,
        IntegrationConfig(),
        ProfileSettings(prediction_min_buyers=100, prediction_min_repeat_buyers=20),
        D,
    )
    assert stats["predictions"]["status"] == "fitted", stats["predictions"]
    assert stats["predictions"]["model"] == "mbgnbd"
    assert conn.execute("SELECT count(*) FROM customer_profile WHERE p_alive IS NOT NULL").fetchone() == (
        buyers,
    )
    # the dashboard's in-memory profile of the day before: no fit, NULL predictions
    stats = compute_profile(
        conn, IntegrationConfig(), ProfileSettings(prediction_min_buyers=100, prediction_min_repeat_buyers=20), D,
        write=False, keep_intermediates=True, predict=False,
    )  # fmt: skip
    assert stats["predictions"] is None
    assert conn.execute("SELECT count(*), count(p_alive) FROM temp.profile_result").fetchone() == (
        stats["customers"],
        0,
    )


def test_model_from_the_environment(monkeypatch):
    monkeypatch.setenv("VTEX_PIPELINE_CLV_MODEL", "bgnbd")
    assert ProfileSettings().transaction_model() == "bgnbd"
    assert ProfileSettings(clv_model="mbgnbd").transaction_model() == "mbgnbd"
    monkeypatch.setenv("VTEX_PIPELINE_CLV_MODEL", "pareto")
    with pytest.raises(ValueError, match="VTEX_PIPELINE_CLV_MODEL"):
        ProfileSettings().transaction_model()


def _materialize(cfg: IntegrationConfig) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_profile_assets(cfg),
        partition_key=D.isoformat(),
        resources=resources_for(cfg),
        raise_on_error=False,
    )


def test_asset_metadata_and_checks(store, tmp_path, monkeypatch):
    monkeypatch.setenv("VTEX_PIPELINE_CLV_MODEL", "bgnbd")
    cfg = IntegrationConfig(duckdb_path=str(store["path"]), start_date=date(2025, 1, 1))
    result = _materialize(cfg)
    mat = result.asset_materializations_for_node(f"{cfg.name}__customer_profile")[0]
    assert mat.metadata["predictions/model"].value == "bgnbd"
    assert mat.metadata["predictions/status"].value == "fitted"
    assert set(mat.metadata["predictions/bgnbd_params"].value) == {"r", "alpha", "a", "b"}
    assert "| 13 |" in mat.metadata["backtest/weeks"].value
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evals["predictions_fit"].passed
    assert (
        evals["predictions_fit"].metadata["bgnbd_customers"].value == store["stats"]["predictions"]["buyers"]
    )
    bt = evals["predictions_backtest"]
    assert bt.passed and bt.severity == dg.AssetCheckSeverity.WARN
    n, m = bt.metadata["predicted_N"].value, bt.metadata["actual_M"].value
    assert bt.metadata["share"].value == pytest.approx(abs(n - m) / m, abs=1e-3)
    assert "| week | days | predicted | actual |" in bt.metadata["weeks"].value
    assert _read(store["path"], "SELECT model FROM clv_model WHERE as_of = ? ORDER BY 1", [D]) == [
        ("bgnbd",),
        ("gamma_gamma",),
    ]

    # A failed fit: NULL predictions, the reason in metadata, the check fails (ERROR, not blocking).
    def failing(*args, **kwargs):
        return FitResult("bgnbd", None, None, 100, False, "bgnbd: b ran to the optimizer bound")

    monkeypatch.setattr(profile_predictions, "fit_transaction_model", failing)
    result = _materialize(cfg)
    mat = result.asset_materializations_for_node(f"{cfg.name}__customer_profile")[0]
    assert mat.metadata["predictions/status"].value == "failed"
    assert "b ran to the optimizer bound" in mat.metadata["predictions/null_reason"].value
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evals["predictions_fit"].passed
    assert evals["predictions_fit"].severity == dg.AssetCheckSeverity.ERROR
    assert not evals["predictions_fit"].blocking
    assert "optimizer bound" in evals["predictions_fit"].metadata["reason"].value
    assert _read(store["path"], "SELECT count(*) FROM customer_profile WHERE p_alive IS NOT NULL") == [(0,)]
    assert _read(store["path"], "SELECT count(*) FROM clv_model WHERE as_of = ?", [D]) == [(0,)]

    # A back-test off by more than the share warns.
    monkeypatch.undo()
    result = dg.materialize(
        build_profile_assets(cfg, ProfileSettings(backtest_warn_share=1e-6)),
        partition_key=D.isoformat(), resources=resources_for(cfg), raise_on_error=False,
    )  # fmt: skip
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evals["predictions_backtest"].passed and evals["predictions_fit"].passed


def test_prediction_settings_follow_the_profile_settings():
    ps = ProfileSettings(
        clv_model="bgnbd", prediction_min_buyers=10, churn_low_min_p_alive=0.8
    ).prediction_settings()
    assert ps == PredictionSettings(model="bgnbd", min_buyers=10, churn_low_min_p_alive=0.8)
    with pytest.raises(ValueError):
        ProfileSettings(churn_low_min_p_alive=0.2, churn_medium_min_p_alive=0.5)


def test_an_existing_history_gains_the_prediction_columns_and_keeps_its_days():
    orders = simulate_orders(300, seed=3)
    conn = duckdb.connect()
    prepare(conn)
    write_store(conn, orders)
    compute_profile(conn, IntegrationConfig(), ProfileSettings(), D - timedelta(days=1))
    # the history as an older version wrote it: without the prediction columns
    for column in ("p_alive", "expected_orders_365d", "predicted_clv_365d", "churn_risk"):
        conn.execute(f"ALTER TABLE customer_profile_history DROP COLUMN {column}")
    kept = conn.execute("SELECT count(*) FROM customer_profile_history").fetchone()[0]
    compute_profile(
        conn,
        IntegrationConfig(),
        ProfileSettings(prediction_min_buyers=100, prediction_min_repeat_buyers=20),
        D,
    )
    by_day = conn.execute(
        "SELECT as_of, count(*), count(p_alive) FROM customer_profile_history GROUP BY 1 ORDER BY 1"
    ).fetchall()
    buyers = orders["customer_id"].nunique()
    assert by_day[0] == (D - timedelta(days=1), kept, 0)
    assert by_day[1][0] == D and by_day[1][2] == buyers
