"""Per-buyer summaries (x, t_x, T, m) from purchases, and their exact grouping for the fits.

`summaries.sql` is the warehouse's version (DuckDB); `summaries_from_purchases` is the same rule in pandas,
used by the tests to check one against the other and on CDNOW.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib.resources import files

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


@cache
def summary_sql() -> str:
    """Query over `purchase_days(customer_id, purchase_date, value)` with parameter `$as_of`: one row per
    buyer with customer_id, x, t_x, T, m."""
    return files("vtex_pipeline.predictions").joinpath("summaries.sql").read_text(encoding="utf-8")


def grouped_summary_sql() -> str:
    """The summary grouped exactly on (x, t_x, T) with `weights` = buyers per row: what the fit reads.
    Built from `summary_sql()` so the two can never disagree on the rule."""
    body = "\n".join(line for line in summary_sql().splitlines() if not line.lstrip().startswith("--"))
    return (
        f'SELECT x, t_x, "T", count(*) AS weights\nFROM (\n{body}\n) AS summary\n'
        'GROUP BY x, t_x, "T"\nORDER BY x, t_x, "T"'
    )


def summaries_from_purchases(
    purchases: pd.DataFrame,
    as_of: date | str,
    *,
    customer: str = "customer_id",
    when: str = "purchase_date",
    value: str = "value",
) -> pd.DataFrame:
    """One row per buyer (index: customer) with x, t_x, T (days) and m, purchases after `as_of` ignored.

    Same-day purchases are one purchase day worth their sum; m averages the repeat days only.
    """
    cutoff = pd.Timestamp(as_of).normalize()
    frame = pd.DataFrame(
        {
            "customer": purchases[customer].to_numpy(),
            "day": pd.to_datetime(purchases[when]).dt.normalize().to_numpy(),
            "value": purchases[value].astype("float64").to_numpy(),
        }
    )
    frame = frame[frame["day"] <= cutoff]
    days = frame.groupby(["customer", "day"], sort=True, as_index=False)["value"].sum()
    first = days.groupby("customer")["day"].transform("min")
    grouped = days.assign(repeat_value=days["value"].where(days["day"] > first)).groupby("customer")
    summary = pd.DataFrame(
        {
            "x": grouped["day"].count() - 1,
            "first": grouped["day"].min(),
            "last": grouped["day"].max(),
            "m": grouped["repeat_value"].mean(),
        }
    )
    summary["t_x"] = (summary["last"] - summary["first"]).dt.days
    summary["T"] = (cutoff - summary["first"]).dt.days
    summary.index.name = customer
    return summary[["x", "t_x", "T", "m"]].astype({"x": "int64", "t_x": "int64", "T": "int64"})


def group_summaries(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]
]:
    """Exact grouping on (x, t_x, T): distinct rows, their weights, and each input row's group index.

    Whole-number inputs (days) are packed into one int64 key, which sorts ~10x faster than a 3-column
    lexicographic unique; anything else falls back to that.
    """
    cols = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (x, t_x, T)]
    whole = all(np.all(c == np.floor(c)) and (c.size == 0 or c.min() >= 0) for c in cols)
    spans = [int(c.max()) + 1 if c.size else 1 for c in cols]
    if whole and float(spans[0]) * spans[1] * spans[2] < 2.0**62:
        key = (cols[0].astype(np.int64) * spans[1] + cols[1].astype(np.int64)) * spans[2] + cols[2].astype(
            np.int64
        )
        keys, first, inverse, counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        rows = np.stack([c[first] for c in cols])
    else:
        stacked = np.stack(cols, axis=1)
        unique, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
        rows = unique.T
    return rows[0], rows[1], rows[2], counts.astype(np.float64), inverse.reshape(-1)
