"""Names of the predictions (docs/attributes.md) without numpy or SciPy: the transaction models and the profile's prediction
columns. Settings, the profile's SQL and the code location's load need the names; only a profile run
needs the models."""

from __future__ import annotations

HORIZONS_DAYS: dict[str, int] = {
    "expected_orders_30d": 30,
    "expected_orders_90d": 90,
    "expected_orders_365d": 365,
}
PREDICTION_COLUMNS: tuple[str, ...] = (
    "p_alive",
    *HORIZONS_DAYS,
    "expected_avg_order_value",
    "predicted_clv_365d",
    "expected_next_order_date",
    "avg_days_between_orders",
    "churn_risk",
)

TRANSACTION_MODELS: tuple[str, ...] = ("mbgnbd", "bgnbd")
