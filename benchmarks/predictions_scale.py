"""Time the customer-base-analysis models on a store of 1,000,000 buyers: group, fit, score.

    .venv/bin/python -m benchmarks.predictions_scale --customers 1000000

Buyers are drawn from the MBG/NBD and Gamma-Gamma generative processes (`predictions.simulate`) with
known parameters, first purchases spread uniformly over `--years` before the as-of date, purchase times
floored to whole days (as the warehouse's summary has them). Timed: exact grouping on (x, t_x, T), the
transaction fit on the groups, the spend fit on the repeat buyers, and scoring every buyer. Extra memory
is the tracemalloc peak of a second, untimed pass of the same steps (numpy reports its buffers to
tracemalloc), so it counts what the steps allocate beyond the inputs. One JSON line is printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from datetime import date
from typing import Any

import numpy as np

from vtex_pipeline.predictions import (
    PredictionSettings,
    SpendParams,
    TransactionParams,
    fit_spend_model,
    fit_transaction_model,
    group_summaries,
    score_customers,
)
from vtex_pipeline.predictions.simulate import simulate_spend, simulate_transactions

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
    scores = score_customers(
        data["x"],
        data["t_x"],
        data["T"],
        data["m"],
        transaction=transaction.params,  # type: ignore[arg-type]
        spend=spend.params,  # type: ignore[arg-type]
        settings=settings,
        as_of=date(2025, 6, 15),
    )
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--years", type=float, default=3.0, help="first purchases spread over this many years")
    ap.add_argument("--seed", type=int, default=20250615)
    args = ap.parse_args(argv)

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
