"""The CDNOW sample (the literature's benchmark data set), read from the project's shared data folder beside
the checkout (`../shared/data/CDNOW_sample.txt`) or from `CDNOW_SAMPLE`. It is reference data, not part of
the repository: without it the tests that need it skip, saying why (with CI set they fail instead)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

_ROOT = Path(__file__).resolve().parents[2]


def running_in_ci() -> bool:
    """CI is set to something true: what may skip locally must run there (as the other optional-data tests)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _find() -> Path:
    candidates = [Path(os.environ["CDNOW_SAMPLE"])] if os.environ.get("CDNOW_SAMPLE") else []
    candidates += [p / "shared" / "data" / "CDNOW_sample.txt" for p in (_ROOT.parent, _ROOT.parent.parent)]
    return next((c for c in candidates if c.is_file()), candidates[0])


@pytest.fixture(scope="session")
def cdnow_purchases() -> pd.DataFrame:
    """6,919 purchase records: customer_id (the sample id), purchase_date, value (dollars), unmerged."""
    path = _find()
    if not path.is_file():
        why = f"CDNOW sample not found (looked in {path}; set CDNOW_SAMPLE)"
        if running_in_ci():
            pytest.fail(f"CI is set and {why}", pytrace=False)
        pytest.skip(why)
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "value"],
        dtype={"date": str},
    )
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("int64"),
            "purchase_date": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "value": raw["value"].astype("float64"),
        }
    )
