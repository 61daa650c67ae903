"""Per-customer prediction columns (docs/attributes.md) from summaries and fitted parameters.

Vectorized over customers: 10^6 buyers score in well under a second, because the costly 2F1 of the
expected purchases is evaluated once per distinct (x, T), not once per buyer.
Customers without a purchase have no summary and get NULLs from the caller, not from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vtex_pipeline.predictions.bgnbd import (
    TransactionParams,
    expected_purchases_if_alive,
    median_time_to_next_purchase,
    p_alive,
)
from vtex_pipeline.predictions.fit import FitResult, PredictionSettings
from vtex_pipeline.predictions.gamma_gamma import SpendParams, expected_average_value
from vtex_pipeline.predictions.names import HORIZONS_DAYS


def score_fits(
    summaries: Mapping[str, ArrayLike],
    transaction: FitResult,
    spend: FitResult,
    *,
    settings: PredictionSettings | None = None,
    as_of: date | None = None,
) -> dict[str, NDArray]:
    """`score_customers` on a summary table's columns (x, t_x, T, m) with the parameters of two fits
    (the caller has checked `.ok`): the profile and the scale benchmark score alike."""
    return score_customers(
        summaries["x"],
        summaries["t_x"],
        summaries["T"],
        summaries["m"],
        transaction=cast(TransactionParams, transaction.params),
        spend=cast(SpendParams, spend.params),
        settings=settings,
        as_of=as_of,
    )


def score_customers(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    m: ArrayLike,
    *,
    transaction: TransactionParams,
    spend: SpendParams,
    settings: PredictionSettings | None = None,
    model: str | None = None,
    as_of: date | None = None,
) -> dict[str, NDArray]:
    """The prediction columns for buyers with summaries (x, t_x, T in days, m NaN where x = 0).

    Returns numpy arrays keyed by column name (`pd.DataFrame(result)` or `pa.table(result)` builds a table):
    `expected_next_order_days` is the whole-day offset from the as-of date, and `expected_next_order_date`
    (datetime64[D]) is added when `as_of` is given. Money is rounded to 2 decimals; `predicted_clv_365d`
    multiplies the two columns as published (so the table is self-consistent); `avg_days_between_orders`
    is NaN where x = 0. Rounding is numpy's half-to-even throughout.
    """
    settings = settings or PredictionSettings()
    model = model or settings.model
    x_ = np.asarray(x, dtype=np.float64).reshape(-1)
    t_x_ = np.asarray(t_x, dtype=np.float64).reshape(-1)
    T_ = np.asarray(T, dtype=np.float64).reshape(-1)
    m_ = np.asarray(m, dtype=np.float64).reshape(-1)
    if not (x_.size == t_x_.size == T_.size == m_.size):
        raise ValueError("x, t_x, T and m must have the same length")
    alive = p_alive(model, transaction, x_, t_x_, T_)
    out: dict[str, NDArray] = {"p_alive": alive}
    # E[purchases | alive] depends on (x, T) only: evaluate the 2F1 once per distinct pair (~25,000 for a
    # million buyers over three years) rather than once per buyer.
    pairs, inverse = _distinct_pairs(x_, T_)
    for column, days in HORIZONS_DAYS.items():
        if_alive = expected_purchases_if_alive(model, transaction, x_[pairs], T_[pairs], days)
        out[column] = if_alive[inverse] * alive
    value = np.round(expected_average_value(spend, x_, m_), 2)
    out["expected_avg_order_value"] = value
    out["predicted_clv_365d"] = np.round(out["expected_orders_365d"] * value, 2)
    offset = np.rint(median_time_to_next_purchase(transaction, x_, T_)).astype(np.int64)
    out["expected_next_order_days"] = offset
    if as_of is not None:
        out["expected_next_order_date"] = np.datetime64(as_of, "D") + offset.astype("timedelta64[D]")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_days_between_orders"] = np.where(x_ > 0, np.round(t_x_ / x_, 1), np.nan)
    out["churn_risk"] = np.where(
        alive >= settings.churn_low_min_p_alive,
        "low",
        np.where(alive >= settings.churn_medium_min_p_alive, "medium", "high"),
    )
    return out


def _distinct_pairs(
    x: NDArray[np.float64], T: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Row of the first occurrence of each distinct (x, T) and each row's pair; identity unless both are
    whole non-negative numbers (days), which pack into one sortable int64 key."""
    whole = x.size > 0 and all(np.all(v == np.floor(v)) and v.min() >= 0 and v.max() < 2**31 for v in (x, T))
    if not whole:
        rows = np.arange(x.size)
        return rows, rows
    key = x.astype(np.int64) * (int(T.max()) + 1) + T.astype(np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)
