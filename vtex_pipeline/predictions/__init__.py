"""Customer-base analysis (spec section 6): BG/NBD and MBG/NBD purchase-day models, the Gamma-Gamma
spend model, their maximum-likelihood fits on grouped summaries, and vectorized per-customer scoring.

Pure numpy/scipy: no Dagster, no DuckDB. The per-buyer summary SQL ships next to the code
(`summaries.sql`, read through `summaries.summary_sql()`) so the warehouse can group before fitting.
"""

from vtex_pipeline.predictions.bgnbd import (
    TRANSACTION_MODELS,
    TransactionParams,
    expected_purchases_if_alive,
    expected_repeat_purchases,
    log_likelihood,
    median_time_to_next_purchase,
    p_alive,
)
from vtex_pipeline.predictions.fit import (
    FitResult,
    PredictionSettings,
    fit_spend_model,
    fit_transaction_model,
    insufficient_data_reason,
)
from vtex_pipeline.predictions.gamma_gamma import SpendParams, expected_average_value
from vtex_pipeline.predictions.scoring import PREDICTION_COLUMNS, score_customers
from vtex_pipeline.predictions.summaries import (
    group_summaries,
    grouped_summary_sql,
    summaries_from_purchases,
    summary_sql,
)

__all__ = [
    "PREDICTION_COLUMNS",
    "TRANSACTION_MODELS",
    "FitResult",
    "PredictionSettings",
    "SpendParams",
    "TransactionParams",
    "expected_average_value",
    "expected_purchases_if_alive",
    "expected_repeat_purchases",
    "fit_spend_model",
    "fit_transaction_model",
    "group_summaries",
    "grouped_summary_sql",
    "insufficient_data_reason",
    "log_likelihood",
    "median_time_to_next_purchase",
    "p_alive",
    "score_customers",
    "summaries_from_purchases",
    "summary_sql",
]
