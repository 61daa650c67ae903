"""Customer-base analysis (docs/predictions.md): BG/NBD and MBG/NBD purchase-day models, the Gamma-Gamma
spend model, their maximum-likelihood fits on grouped summaries, and vectorized per-customer scoring.

Pure numpy/scipy: no Dagster, no DuckDB. The per-buyer summary SQL ships next to the code
(`summaries.sql`, read through `summaries.summary_sql()`) so the warehouse can group before fitting.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolved on first use (PEP 562), so `vtex_pipeline.predictions.names` can be imported by the
# code location without importing SciPy and pandas, which only a profile run needs.
_SOURCES: dict[str, str] = {
    "HORIZONS_DAYS": "names",
    "PREDICTION_COLUMNS": "names",
    "TRANSACTION_MODELS": "names",
    "TransactionParams": "bgnbd",
    "expected_purchases_if_alive": "bgnbd",
    "expected_repeat_purchases": "bgnbd",
    "log_likelihood": "bgnbd",
    "median_time_to_next_purchase": "bgnbd",
    "p_alive": "bgnbd",
    "FitResult": "fit",
    "PredictionSettings": "fit",
    "fit_spend_model": "fit",
    "fit_transaction_model": "fit",
    "insufficient_data_reason": "fit",
    "SpendParams": "gamma_gamma",
    "expected_average_value": "gamma_gamma",
    "score_customers": "scoring",
    "score_fits": "scoring",
    "group_summaries": "summaries",
    "grouped_summary_sql": "summaries",
    "summaries_from_purchases": "summaries",
    "summary_sql": "summaries",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_SOURCES])
