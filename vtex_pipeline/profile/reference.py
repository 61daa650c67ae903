"""The daily run's scoring rules, to score a profile at another instant as that run would.

RFM R and M are ranks among the day's buyers and the predictions come from a model fitted on all of
them: a profile recomputed for a few customers between two daily runs (the Orders Feed path) cannot
rank or fit on its own. It borrows them from the last daily run of day D instead: the RFM boundaries
(`sql/feed/rfm_thresholds.sql`, from the stored `int_windows` and `int_rfm` of D) and the fitted
parameters (`clv_model` of D). `compute_profile(..., reference=...)` then builds `int_rfm` with
`sql/feed/int_rfm_fixed.sql` and scores the predictions with those parameters; on day D itself that gives
the daily profile exactly (test_profile_reference.py). The daily run stays the source of truth: it
re-ranks and re-fits everyone the next day. Plain Python, no Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from vtex_pipeline.profile.models import StaleUpstreamError, model_select, named_parameters
from vtex_pipeline.warehouse.sql_files import read_sql

THRESHOLDS_SQL = "feed/rfm_thresholds.sql"
FIXED_RFM_SQL = "feed/int_rfm_fixed.sql"
THRESHOLDS_TABLE = "rfm_thresholds"  # TEMP: lives with the connection, visible from any attached catalog


class NoReferenceError(RuntimeError):
    """No daily profile to borrow the scoring from yet (or its models were rebuilt for another day)."""


@dataclass(frozen=True)
class Reference:
    """What a profile of another day borrows from the daily run of `as_of`."""

    as_of: date
    transaction_model: str | None = None  # "mbgnbd" / "bgnbd"; None: D had no usable fit
    transaction_params: dict[str, float] | None = None
    spend_params: dict[str, float] | None = None
    settings: dict[str, Any] | None = None  # the ProfileSettings the daily run used (thresholds, statuses)

    @property
    def has_predictions(self) -> bool:
        return self.transaction_params is not None and self.spend_params is not None

    def describe(self) -> dict[str, Any]:
        return {"reference_as_of": self.as_of.isoformat(), "reference_model": self.transaction_model}


def latest_daily_day(conn: duckdb.DuckDBPyConnection) -> date | None:
    """The newest day the daily profile was computed for (None before the first)."""
    if not conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'customer_profile_runs' AND NOT temporary"
    ).fetchone()[0]:
        return None
    return conn.execute("SELECT max(as_of) FROM main.customer_profile_runs").fetchone()[0]


def load_reference(conn: duckdb.DuckDBPyConnection, as_of: date | None = None) -> Reference:
    """The reference of day `as_of` (default: the newest daily profile): its RFM boundaries into the TEMP
    table `rfm_thresholds`, its fitted parameters returned. Reads the stored models, which must hold D."""
    day = as_of or latest_daily_day(conn)
    if day is None:
        raise NoReferenceError("no daily profile yet: the daily run has not computed a profile")
    for table in ("int_windows", "int_rfm"):
        held = conn.execute(f"SELECT min(as_of), max(as_of) FROM main.{table}").fetchone()
        if held[0] is not None and (held[0] != day or held[1] != day):
            raise StaleUpstreamError(
                f"{table} holds {held[0]}, not the daily profile's day {day}: materialize the models of "
                f"{day} (or run the daily job) first"
            )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {THRESHOLDS_TABLE} AS {_select(THRESHOLDS_SQL)}")
    params: dict[str, dict[str, float]] = {}
    models: dict[str, str] = {}
    if conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'clv_model' AND NOT temporary"
    ).fetchone()[0]:
        for model, text in conn.execute(
            "SELECT model, params FROM main.clv_model WHERE as_of = ?", [day]
        ).fetchall():
            kind = "spend" if model == "gamma_gamma" else "transaction"
            params[kind], models[kind] = json.loads(text), model
    row = conn.execute("SELECT parameters FROM main.customer_profile_runs WHERE as_of = ?", [day]).fetchone()
    settings = (json.loads(row[0]) or {}).get("settings") if row and row[0] else None
    return Reference(day, models.get("transaction"), params.get("transaction"), params.get("spend"), settings)


def _select(relative: str) -> str:
    (stmt,) = duckdb.extract_statements(read_sql(relative))
    return stmt.query.strip().rstrip(";")


def build_fixed_rfm(conn: duckdb.DuckDBPyConnection, params: dict[str, Any], *, temp: bool) -> None:
    """`int_rfm` of the connection's current catalog, scored with the reference's boundaries."""
    _, select = model_select(FIXED_RFM_SQL)
    scope = "TEMP " if temp else ""
    conn.execute(
        f"CREATE OR REPLACE {scope}TABLE int_rfm AS {select}", named_parameters(FIXED_RFM_SQL, select, params)
    )
