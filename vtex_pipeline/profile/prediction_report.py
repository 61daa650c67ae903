"""The predictions step's table names and metadata formatting, without numpy, pandas or SciPy.

Every run imports the code location, and a 4-hourly sync never fits a model: keeping SciPy and pandas
(about 1 s of imports) out of what `vtex_pipeline.definitions` imports cuts every run's start-up, which
is what bounds how fast the daemon launches many accounts' runs (docs/scaling.md).
"""

from __future__ import annotations

from typing import Any

PREDICTIONS_TABLE = "int_predictions"
SUMMARY_TABLE = "int_clv_summary"
BACKTEST_SUMMARY_TABLE = "int_clv_backtest_summary"
TEMP_TABLES = (PREDICTIONS_TABLE, SUMMARY_TABLE, BACKTEST_SUMMARY_TABLE)
TEMP_VIEWS = ("purchase_days",)


def backtest_table(weeks: list[dict[str, Any]]) -> str:
    """Markdown: predicted vs actual repeat purchase days per week of the holdout."""
    rows = "\n".join(
        f"| {w['week']} | {w['period_start']} – {w['period_end']} | {w['predicted']:.1f} | {w['actual']} |"
        for w in weeks
    )
    return "| week | days | predicted | actual |\n|---:|---|---:|---:|\n" + rows


def prediction_metadata(info: dict[str, Any]) -> dict[str, Any]:
    """Plain values for the materialization metadata (the asset wraps markdown/json)."""
    meta: dict[str, Any] = {
        "predictions/model": info["model"],
        "predictions/status": info["status"],
        "predictions/buyers": info["buyers"],
        "predictions/repeat_buyers": info["repeat_buyers"],
        "predictions/seconds": info["seconds"],
    }
    if info["reason"]:
        meta["predictions/null_reason"] = info["reason"]
    for f in info["fits"]:
        if f["ok"]:
            meta[f"predictions/{f['model']}_params"] = {k: round(float(v), 6) for k, v in f["params"].items()}
            meta[f"predictions/{f['model']}_log_likelihood"] = round(float(f["log_likelihood"]), 3)
            meta[f"predictions/{f['model']}_customers"] = f["customers"]
    bt = info.get("backtest") or {}
    meta["backtest/status"] = bt.get("status")
    if bt.get("reason"):
        meta["backtest/reason"] = bt["reason"]
    if bt.get("status") == "fitted":
        meta["backtest/predicted"] = round(float(bt["predicted"]), 1)
        meta["backtest/actual"] = int(bt["actual"])
        if bt["share"] is not None:
            meta["backtest/share"] = round(float(bt["share"]), 4)
    return meta
