"""Compute the customer profile as of a date D: build the SQL models of `sql/` (`profile/models.py`)
on a DuckDB connection and write `customer_profile` (latest date) and `customer_profile_history` (per
date).

Plain Python, no Dagster. The assets build one model each (`assets/models.py`) and call
`finish_profile` for the mart; the tests, the dashboard and the benchmark call `compute_profile`,
which builds every model in order and then does the same. The models are stored tables (queryable in
the file, each row with its as_of); `temp_models=True` builds the per-day ones as TEMP tables that
shadow the stored ones instead (an older date of a backfill, the dashboard's day before).
"""

from __future__ import annotations

import csv
import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.predictions.names import PREDICTION_COLUMNS
from vtex_pipeline.profile import prediction_report
from vtex_pipeline.profile.models import (
    MODELS,
    build_staging_layer,
    check_upstream,
    drop_temp_models,
    named_parameters,
    prepare_models,
    run_model,
)
from vtex_pipeline.profile.reference import Reference, build_fixed_rfm
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import transaction
from vtex_pipeline.warehouse.schema import create_or_extend
from vtex_pipeline.warehouse.sql_files import read_sql, sql_dir

# The mart is one SELECT; compute_profile chooses where it is materialized.
MART_SQL = "marts/customer_profile.sql"
# Where the profile is materialized when it does not go to customer_profile (an older date, write=False).
RESULT_TABLE = "profile_result"
TEMP_TABLES = (RESULT_TABLE, *prediction_report.TEMP_TABLES)
WINDOWS = ("30d", "60d", "90d", "180d", "360d", "360plus")
WINDOW_ATTRIBUTES = ("orders", "amount", "avg_amount", "products", "categories", "coupons", "rfm")
BASE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "as_of",
    "email",
    "first_name",
    "last_name",
    "document",
    "phone",
    "gender",
    "birth_date",
    "is_newsletter_opt_in",
    "first_purchase_date",
    "days_since_first_purchase",
    "last_purchase_date",
    "days_since_last_purchase",
    "last_purchase_brands",
    "last_purchase_categories",
    "last_purchase_promo_codes",
    *(f"{a}_{w}" for a in WINDOW_ATTRIBUTES for w in WINDOWS),
    "rfm_group",
    "rfm_segment",
)
# The predictions (docs/attributes.md): the mart's last columns, from the TEMP table int_predictions.
PROFILE_COLUMNS: tuple[str, ...] = (*BASE_COLUMNS, *PREDICTION_COLUMNS)
# customer_profile_history keeps what the dashboard needs to follow customers between dates (segment
# transitions, movement between windows) — narrow on purpose: a full copy of every list column per day
# would multiply the write cost and the file size by the number of days kept.
HISTORY_COLUMNS: tuple[str, ...] = (
    "as_of",
    "customer_id",
    "rfm_group",
    "rfm_segment",
    *(f"rfm_{w}" for w in WINDOWS),
    "first_purchase_date",
    "last_purchase_date",
    "orders_360d",
    "orders_360plus",
    "amount_360d",
    "amount_360plus",
    "p_alive",
    "expected_orders_365d",
    "predicted_clv_365d",
    "churn_risk",
)


class SeedError(ValueError):
    """The RFM segment seed is incomplete or ambiguous; the message says what to fix."""


def sql_parameters(cfg: IntegrationConfig, settings: ProfileSettings, as_of: date) -> dict[str, Any]:
    """The prepared-statement parameters the SQL files use (`$as_of`, `$timezone`, ...)."""
    t = settings.f_thresholds
    return {
        "as_of": as_of,
        "timezone": cfg.timezone,
        "excluded_statuses": list(settings.excluded_statuses),
        "sales_channels": [str(s) for s in (cfg.sales_channels or [])],  # empty = every channel
        "f2": t[1],
        "f3": t[2],
        "f4": t[3],
        "f5": t[4],
    }


def _mart_select() -> str:
    (stmt,) = duckdb.extract_statements(read_sql(MART_SQL))
    return stmt.query.strip().rstrip(";")


def mart_columns(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> list[str]:
    """The mart's column names, from its plan alone (LIMIT 0 computes nothing)."""
    query = _mart_select()
    cur = conn.execute(f"SELECT * FROM ({query}) LIMIT 0", named_parameters(MART_SQL, query, params))
    return [d[0] for d in cur.description]


def materialize_mart(
    conn: duckdb.DuckDBPyConnection, target: str, params: dict[str, Any], *, temp: bool = False
) -> None:
    """CREATE OR REPLACE `target` AS the mart's SELECT (sql/marts/customer_profile.sql)."""
    query = _mart_select()
    kind = "TEMP TABLE" if temp else "TABLE"
    conn.execute(f"CREATE OR REPLACE {kind} {target} AS {query}", named_parameters(MART_SQL, query, params))


def load_rfm_segments(conn: duckdb.DuckDBPyConnection, path: str | Path | None = None) -> int:
    """(Re)load the operator-editable seed into `seed_rfm_segments`, after checking it is complete:
    one row per lifetime (F, R) in 1..5 x 1..5 plus one prospects row with both empty."""
    path = Path(path) if path else sql_dir() / "seeds" / "rfm_segments.csv"
    rows: list[tuple[int | None, int | None, str, str]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for n, rec in enumerate(csv.DictReader(fh), start=2):
            try:
                f = int(rec["f_score"]) if (rec.get("f_score") or "").strip() else None
                r = int(rec["r_score"]) if (rec.get("r_score") or "").strip() else None
                group, segment = rec["rfm_group"].strip(), rec["rfm_segment"].strip()
            except (KeyError, ValueError, AttributeError) as exc:
                raise SeedError(
                    f"{path}:{n}: expected f_score,r_score,rfm_group,rfm_segment ({exc})"
                ) from None
            if not group or not segment:
                raise SeedError(f"{path}:{n}: empty group or segment name")
            rows.append((f, r, group, segment))
    keys = [(f, r) for f, r, _, _ in rows]
    expected = {(None, None)} | {(f, r) for f in range(1, 6) for r in range(1, 6)}
    if len(keys) != len(set(keys)) or set(keys) != expected:
        missing = sorted(expected - set(keys), key=str)
        dupes = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        raise SeedError(
            f"{path}: needs exactly one row per (f_score, r_score); missing {missing}, repeated {dupes}"
        )
    conn.execute(
        """CREATE OR REPLACE TABLE seed_rfm_segments (
               f_score INTEGER, r_score INTEGER, rfm_group VARCHAR NOT NULL, rfm_segment VARCHAR NOT NULL)"""
    )
    conn.executemany("INSERT INTO seed_rfm_segments VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position""",
        [table],
    ).fetchall()


def _materialize(
    conn: duckdb.DuckDBPyConnection, params: dict[str, Any], stats: dict[str, Any], *, latest: bool
) -> tuple[str, str]:
    """The mart into `customer_profile` (latest) or the scratch `profile_result`, its customers, buyers
    and segment distribution into `stats`; returns (table name, qualified name) of what was written."""
    name = "customer_profile" if latest else RESULT_TABLE
    materialize_mart(conn, name, params, temp=not latest)
    source = name if latest else f"temp.{name}"
    customers, buyers = conn.execute(f"SELECT count(*), count(first_purchase_date) FROM {source}").fetchone()
    segments = conn.execute(
        f"SELECT coalesce(rfm_segment, '(none)'), count(*) FROM {source} GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    stats["customers"], stats["buyers"] = int(customers), int(buyers)
    stats["segments"] = {k: int(v) for k, v in segments}
    return name, source


def _write_results(
    conn: duckdb.DuckDBPyConnection,
    as_of: date,
    settings: ProfileSettings,
    stats: dict[str, Any],
    params: dict[str, Any],
) -> bool:
    """Materialize the mart once: straight into `customer_profile` when D is the newest date (else into
    the scratch `profile_result`), then history for D (delete then insert) and the run log.
    One transaction: readers see the old or the new profile, never a half-written one."""
    with transaction(conn):
        create_or_extend(
            conn,
            """CREATE TABLE IF NOT EXISTS customer_profile_runs (
                   as_of DATE PRIMARY KEY, computed_at TIMESTAMPTZ NOT NULL, customers BIGINT,
                   buyers BIGINT, purchases BIGINT, resolved_purchases BIGINT,
                   resolved_by_user_profile_id BIGINT, resolved_by_email BIGINT, resolved_by_document BIGINT,
                   seconds DOUBLE, parameters VARCHAR)""",
        )
        latest = conn.execute("SELECT max(as_of) FROM customer_profile_runs").fetchone()[0]
        existing = _columns(conn, "customer_profile")
        # an older date (a backfill) leaves the latest profile alone, unless the columns changed
        # (an edited mart): then the table is rebuilt in the new shape
        write_latest = (
            latest is None or as_of >= latest or [c for c, _ in existing] != mart_columns(conn, params)
        )
        name, source = _materialize(conn, params, stats, latest=write_latest)
        if settings.history_days > 0:
            cols = ", ".join(HISTORY_COLUMNS)
            wanted = [c for c in _columns(conn, name) if c[0] in HISTORY_COLUMNS]
            have = _columns(conn, "customer_profile_history")
            if have and set(have) < set(wanted):
                # new columns (e.g. the predictions): added in place, the days already kept stay
                for column, kind in wanted:
                    if (column, kind) not in have:
                        conn.execute(f"ALTER TABLE customer_profile_history ADD COLUMN {column} {kind}")
            elif sorted(have) != sorted(wanted):
                conn.execute(
                    f"CREATE OR REPLACE TABLE customer_profile_history AS SELECT {cols} FROM {source} LIMIT 0"
                )
            conn.execute("DELETE FROM customer_profile_history WHERE as_of = ?", [as_of])
            conn.execute(f"INSERT INTO customer_profile_history ({cols}) SELECT {cols} FROM {source}")
            newest = max(as_of, latest) if latest else as_of
            conn.execute(
                "DELETE FROM customer_profile_history WHERE as_of < ?::DATE - ?::INTEGER",
                [newest, settings.history_days],
            )
        if stats.get("predictions"):
            from vtex_pipeline.profile import predictions  # SciPy and pandas: see prediction_report

            predictions.write_prediction_tables(conn, as_of, stats["predictions"])
        conn.execute("DELETE FROM customer_profile_runs WHERE as_of = ?", [as_of])
        conn.execute(
            "INSERT INTO customer_profile_runs VALUES (?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                as_of,
                stats["customers"],
                stats["buyers"],
                stats["purchases"],
                stats["resolved_purchases"],
                stats["resolved_by"].get("user_profile_id", 0),
                stats["resolved_by"].get("email", 0),
                stats["resolved_by"].get("document", 0),
                stats["seconds"],
                json.dumps(stats["parameters"], default=str),
            ],
        )
    return write_latest


def drop_intermediates(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop this module's TEMP scratch and TEMP model copies; the stored models stay."""
    for t in TEMP_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
    drop_temp_models(conn)
    for view in prediction_report.TEMP_VIEWS:
        conn.execute(f"DROP VIEW IF EXISTS temp.{view}")


def build_model(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    settings: ProfileSettings,
    params: dict[str, Any],
    *,
    temp: bool = False,
    reference: Reference | None = None,
) -> None:
    """`run_model`, after what the model needs first: int_rfm reloads the (editable) segment seed.
    With a `reference`, int_rfm is scored with the boundaries of its day (profile/reference.py)."""
    if name == "int_rfm":
        load_rfm_segments(conn, settings.rfm_segments_csv)
        if reference is not None:
            build_fixed_rfm(conn, params, temp=temp)
            return
    run_model(conn, name, params, temp=temp)


def finish_profile(
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    settings: ProfileSettings,
    as_of: date,
    *,
    write: bool = True,
    predict: bool = True,
    checked: bool = True,
    steps: dict[str, float] | None = None,
    started: float | None = None,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """The mart as of D from the models of D: predictions, then customer_profile / history / run log.

    `checked`: refuse stored intermediate tables of another day (a TEMP build of D skips it).
    `reference`: score the predictions with the parameters of its day instead of fitting."""
    started = started if started is not None else time.perf_counter()
    steps = steps if steps is not None else {}
    params = sql_parameters(cfg, settings, as_of)
    prepare_models(conn)
    if checked:
        check_upstream(conn, "customer_profile", params)
    if not conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'seed_rfm_segments'"
    ).fetchone()[0]:
        load_rfm_segments(conn, settings.rfm_segments_csv)
    # Predictions: fit, score (TEMP int_predictions, joined by the mart) and back-test.
    t0 = time.perf_counter()
    # Imported here, not at the top: SciPy and pandas stay out of every run's start-up (prediction_report).
    from vtex_pipeline.profile import predictions

    if reference is not None:
        prediction_info = predictions.score_with_reference(conn, as_of, settings, reference)
    elif predict:
        prediction_info = predictions.compute_predictions(conn, as_of, settings)
    else:
        prediction_info = None
        predictions.empty_predictions(conn)
    steps["predictions"] = round(time.perf_counter() - t0, 3)

    by_rule = dict(
        conn.execute(
            """SELECT oc.resolved_by, count(*) FROM stg_order_customer oc JOIN stg_purchases p USING (okey)
               WHERE oc.resolved_by IS NOT NULL AND p.purchase_date <= ? GROUP BY 1""",
            [as_of],
        ).fetchall()
    )
    purchases = conn.execute(
        "SELECT count(*) FROM stg_purchases WHERE purchase_date <= ?", [as_of]
    ).fetchone()[0]
    resolved = sum(by_rule.values())
    stats: dict[str, Any] = {
        "as_of": as_of,
        "parameters": {**params, "settings": settings.model_dump(mode="json")},
        "purchases": int(purchases),
        "resolved_purchases": int(resolved),
        "resolution_share": (resolved / purchases) if purchases else 1.0,
        "resolved_by": {k: int(v) for k, v in by_rule.items()},
        "steps": steps,
        "predictions": prediction_info,
    }
    stats["compute_seconds"] = round(time.perf_counter() - started, 3)
    stats["seconds"] = stats["compute_seconds"]
    stats["wrote_latest"] = False
    t0 = time.perf_counter()
    if write:
        stats["wrote_latest"] = _write_results(conn, as_of, settings, stats, params)
    else:
        _materialize(conn, params, stats, latest=False)
    steps["materialize"] = round(time.perf_counter() - t0, 3)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    return stats


def compute_profile(
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    settings: ProfileSettings | None = None,
    as_of: date | None = None,
    *,
    write: bool = True,
    keep_intermediates: bool = False,
    predict: bool = True,
    staging: bool = True,
    temp_models: bool | None = None,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Build every model as of `as_of` (the daily partition date D) and, unless `write=False`, store
    the profile: the same models, in the same order, as a full run of the assets.

    The connection must have the raw schema and a UTC session (`warehouse.connection.prepare`).
    `staging=True` rebuilds the staging models that are not current (`build_staging`: the daily run
    after a sync reuses what the sync built); `staging=False` reads them as they are (they do not
    depend on D; a stored build still checks they are current). `temp_models` (default:
    `not write`) builds the per-day models as TEMP tables, dropped at the end unless
    `keep_intermediates`. Returns figures for metadata and logs: counts, resolution share, segment
    distribution, step timings, and `predictions` (fit, reasons, back-test). `predict=False` leaves the
    prediction columns NULL without fitting (the dashboard's profile of the day before needs segments).
    `reference` (profile/reference.py) scores RFM and the predictions with the rules of the daily run
    of its day instead of ranking and fitting on this day's buyers; such a profile is never stored.
    """
    if as_of is None:
        raise ValueError("as_of (the profile date D) is required")
    if reference is not None and write:
        raise ValueError("a profile scored with a reference is not stored (write=False)")
    settings = settings or ProfileSettings()
    temp = (not write) if temp_models is None else temp_models
    started = time.perf_counter()
    if settings.memory_limit:
        conn.execute(f"SET memory_limit = '{settings.memory_limit}'")  # validated-looking operator value
    prepare_models(conn)
    params = sql_parameters(cfg, settings, as_of)
    steps: dict[str, float] = {}
    if staging:
        steps.update(build_staging_layer(conn, params))  # timed where rebuilt; current ones are kept
    for model in (m for m in MODELS if m.per_day):
        t0 = time.perf_counter()
        build_model(conn, model.name, settings, params, temp=temp, reference=reference)
        steps[model.name] = round(time.perf_counter() - t0, 3)
    try:
        return finish_profile(
            conn,
            cfg,
            settings,
            as_of,
            write=write,
            predict=predict,
            checked=not temp,
            steps=steps,
            started=started,
            reference=reference,
        )
    finally:
        if not keep_intermediates:
            drop_intermediates(conn)
