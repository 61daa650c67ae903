"""Time the customer-base-analysis models on a store of 1,000,000 buyers: group, fit, score.

    .venv/bin/python -m benchmarks.predictions_scale --customers 1000000
    .venv/bin/python -m benchmarks.predictions_scale --db store.duckdb   # the real path (see real_path)

Buyers are drawn from the MBG/NBD and Gamma-Gamma generative processes (`predictions.simulate`) with
known parameters, first purchases spread uniformly over `--years` before the as-of date, purchase times
floored to whole days (as the warehouse's summary has them). Timed: exact grouping on (x, t_x, T), the
transaction fit on the groups, the spend fit on the repeat buyers, and scoring every buyer. Extra memory
is the tracemalloc peak of a second, untimed pass of the same steps (numpy reports its buffers to
tracemalloc), so it counts what the steps allocate beyond the inputs. One JSON line is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.predictions import (
    PredictionSettings,
    SpendParams,
    TransactionParams,
    fit_spend_model,
    fit_transaction_model,
    group_summaries,
    score_fits,
)
from vtex_pipeline.predictions.simulate import simulate_spend, simulate_transactions
from vtex_pipeline.profile.compute import build_model, sql_parameters
from vtex_pipeline.profile.predictions import compute_predictions
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import prepare

TRUE_TRANSACTION = TransactionParams(r=0.6, alpha=50.0, a=0.9, b=1.6)  # alpha in days
TRUE_SPEND = SpendParams(p=4.0, q=3.0, gamma=60.0)


def generate(customers: int, years: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = rng.integers(0, round(365 * years) + 1, customers).astype(np.float64)
    sim = simulate_transactions("mbgnbd", TRUE_TRANSACTION, T, rng)
    m = np.full(customers, np.nan)
    repeat = sim.x > 0
    m[repeat] = np.round(simulate_spend(TRUE_SPEND, sim.x[repeat], rng), 2)
    return {"x": sim.x, "t_x": np.floor(sim.t_x), "T": sim.T, "m": m}


def steps(data: dict[str, np.ndarray], settings: PredictionSettings) -> dict[str, Any]:
    """Group, fit both models, score: the work a daily run does once the summary is in memory."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    x, t_x, T, weights, _ = group_summaries(data["x"], data["t_x"], data["T"])
    timings["group_s"] = time.perf_counter() - start

    mark = time.perf_counter()
    transaction = fit_transaction_model(x, t_x, T, weights, settings=settings)
    timings["fit_transaction_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    spend = fit_spend_model(data["x"], data["m"], settings=settings)
    timings["fit_spend_s"] = time.perf_counter() - mark
    if not (transaction.ok and spend.ok):
        raise SystemExit(f"fit failed: {transaction.reason or spend.reason}")

    mark = time.perf_counter()
    scores = score_fits(data, transaction, spend, settings=settings, as_of=date(2025, 6, 15))
    timings["score_s"] = time.perf_counter() - mark
    timings["fit_and_score_s"] = time.perf_counter() - start
    return {
        "timings": timings,
        "groups": int(x.size),
        "transaction": transaction,
        "spend": spend,
        "mean_p_alive": float(np.mean(scores["p_alive"])),
        "mean_clv_365d": float(np.mean(scores["predicted_clv_365d"])),
    }


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def model_purchases(customers: int, as_of: date, seed: int, days: int = 730) -> dict[str, np.ndarray]:
    """Purchase rows (ckey, purchase_date, value_cents) of a store drawn from MBG/NBD and Gamma-Gamma with
    TRUE_* parameters: first purchases uniform over `days`, repeat purchases uniform over (first, as_of]
    given their number (order statistics of the Poisson process), the first K kept (dropout after K). The store generator
    of `profile_scale` has no dropout and no spend heterogeneity, so the models' fits run to the bounds
    there (honestly refused): this store is what a fit-and-score run looks like."""
    rng = np.random.default_rng(seed)
    T = rng.integers(0, days + 1, customers).astype(np.float64)
    r, alpha, a, b = TRUE_TRANSACTION
    lam = rng.gamma(r, 1.0 / alpha, customers)
    p = np.maximum(rng.beta(a, b, customers), 1e-300)
    dropout_after = np.floor(np.log(1.0 - rng.random(customers)) / np.log1p(-p))  # repeat purchases kept
    bought = rng.poisson(lam * T)
    who = np.repeat(np.arange(customers), bought)
    times = rng.random(who.size) * T[who]
    order = np.lexsort((times, who))
    who, times = who[order], times[order]
    rank = np.arange(who.size) - np.repeat(np.cumsum(bought) - bought, bought)
    keep = rank < dropout_after[who]  # the purchases before dropping out
    who, offsets = who[keep], np.floor(times[keep])
    ckey = np.concatenate([np.arange(customers), who])
    ago = np.concatenate([T, T[who] - offsets - 1.0]).clip(0)
    nu = rng.gamma(TRUE_SPEND.q, 1.0 / TRUE_SPEND.gamma, customers)
    value = rng.gamma(TRUE_SPEND.p, 1.0 / nu[ckey])
    base = np.datetime64(as_of, "D")
    return {
        "ckey": ckey,
        "purchase_date": base - ago.astype("timedelta64[D]"),
        "value_cents": np.round(value * 100).astype(np.int64),
    }


def model_store_path(customers: int, as_of: date, seed: int, threads: int = 2) -> dict[str, Any]:
    """`compute_predictions` (the real code path: summary SQL, grouped fits, scoring into int_predictions,
    90-day back-test) on a TEMP `int_purchases` drawn from the models (`model_purchases`)."""
    rows = model_purchases(customers, as_of, seed)
    conn = duckdb.connect()
    conn.execute(f"SET threads = {int(threads)}")
    conn.register("_rows", pd.DataFrame(rows))
    conn.execute(
        "CREATE TEMP TABLE int_purchases AS SELECT ckey, purchase_date::DATE AS purchase_date, value_cents "
        "FROM _rows"
    )
    conn.unregister("_rows")
    del rows
    purchases = conn.execute("SELECT count(*) FROM int_purchases").fetchone()[0]
    out = _measure(conn, as_of)
    conn.close()
    return {"benchmark": "predictions_model_store", "purchases": int(purchases), **out}


def _measure(conn: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, Any]:
    rss_before = _status_kb("VmRSS")
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    t0 = time.perf_counter()
    info = compute_predictions(conn, as_of, ProfileSettings())
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    predicted = conn.execute("SELECT count(*) FROM int_predictions").fetchone()[0]
    bt = info["backtest"]
    fits = {f["model"]: f.get("params") or f.get("reason") for f in info["fits"]}
    return {
        "buyers": info["buyers"],
        "repeat_buyers": info["repeat_buyers"],
        "scored": int(predicted),
        "status": info["status"],
        "reason": info["reason"],
        "fit_and_score_s": info["fit_seconds"],
        "with_backtest_s": round(seconds, 3),
        "extra_rss_mb": round((peak - rss_before) / 1024, 1),
        "rss_before_mb": round(rss_before / 1024, 1),
        "fits": fits,
        "backtest": {k: bt.get(k) for k in ("status", "reason", "customers", "predicted", "actual", "share")},
    }


def real_path(db: str, as_of: date, threads: int = 2) -> dict[str, Any]:
    """What the daily profile run does, on a store generated by `benchmarks.profile_scale`: the profile's
    SQL up to `int_purchases`, then `compute_predictions` (summary SQL, grouped fit of the transaction
    model, spend fit, scoring into `int_predictions`, and the 90-day back-test, a second fit). Extra
    memory: the process's peak RSS during `compute_predictions` minus its RSS before (the peak is reset
    through /proc/self/clear_refs), so DuckDB's and numpy's allocations both count."""
    conn = duckdb.connect(db)
    prepare(conn)
    conn.execute(f"SET threads = {int(threads)}")
    conn.execute("SET enable_progress_bar = false")
    cfg = IntegrationConfig(name="bench", timezone="America/Sao_Paulo", duckdb_path=db)
    settings = ProfileSettings(memory_limit="3.5GB")
    params = sql_parameters(cfg, settings, as_of)
    for name in ("stg_customers", "stg_purchases", "stg_order_customer", "int_purchases"):
        build_model(conn, name, settings, params)  # what the predictions read
    out = _measure(conn, as_of)
    conn.close()
    return {"benchmark": "predictions_real_path", **out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="a store generated by benchmarks.profile_scale: measure the real path")
    ap.add_argument(
        "--model-store", action="store_true", help="compute_predictions on purchases drawn from the models"
    )
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--years", type=float, default=3.0, help="first purchases spread over this many years")
    ap.add_argument("--seed", type=int, default=20250615)
    args = ap.parse_args(argv)
    if args.db:
        print(json.dumps(real_path(args.db, date.today()), default=str))
        return 0
    if args.model_store:
        print(json.dumps(model_store_path(args.customers, date.today(), args.seed), default=str))
        return 0

    settings = PredictionSettings()
    data = generate(args.customers, args.years, args.seed)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = steps(data, settings)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    tracemalloc.start()
    steps(data, settings)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    transaction, spend = run["transaction"], run["spend"]
    print(
        json.dumps(
            {
                "benchmark": "predictions_scale",
                "customers": args.customers,
                "repeat_buyers": int(np.count_nonzero(data["x"] > 0)),
                "distinct_x_tx_T_groups": run["groups"],
                **{k: round(v, 3) for k, v in run["timings"].items()},
                "peak_extra_mb": round(peak / 2**20, 1),
                "process_max_rss_mb": round(rss_after / 1024, 1),
                "max_rss_growth_during_steps_mb": round((rss_after - rss_before) / 1024, 1),
                "model": transaction.model,
                "fitted": transaction.params_json(),
                "true": TRUE_TRANSACTION._asdict(),
                "std_errors": transaction.std_errors,
                "log_likelihood": transaction.log_likelihood,
                "iterations": transaction.iterations,
                "spend_fitted": spend.params_json(),
                "spend_true": TRUE_SPEND._asdict(),
                "mean_p_alive": round(run["mean_p_alive"], 4),
                "mean_clv_365d": round(run["mean_clv_365d"], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
