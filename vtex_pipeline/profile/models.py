"""The SQL models: one file `sql/<layer>/<name>.sql` = one table or view `<name>` = one Dagster asset.

`MODELS` is the whole registry, in run order: a model reads only raw tables and the models before it.
A file is dbt-style: its last statement is a SELECT, which `run_model` wraps in
`CREATE OR REPLACE TABLE|VIEW <name> AS ...`; statements before it (only `stg_order_items` has one: its
name dictionary) run as they are. Parameters are DuckDB prepared-statement parameters (`$as_of`, ...).

Staging does not depend on the as-of day D: it is built once per sync and shared by the profile, the
dashboard and the checks; `build_staging` skips a staging table that is current (built from the same
SQL, parameters and raw tables: `staging_fingerprints`), so the daily run after a sync does not pay
for it again. Intermediate models are built for one day D and record it in an `as_of` column; before a
model is built, its upstream models must hold D and be built on the current staging
(`check_upstream`), so a subset run (say, `int_rfm` and what is downstream of it) never reads a table
left by another day or built before the last sync.
Plain Python, no Dagster: the assets (`assets/models.py`), `compute_profile` and the tests call it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from vtex_pipeline.warehouse.sql_files import read_sql

BUILDS_SQL = "staging/create_model_builds.sql"
MACROS_SQL = "intermediate/macros.sql"
NAMES_MACRO_SQL = "intermediate/macros_names.sql"  # needs the type profile_name (stg_order_items)
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Model:
    """One SQL model. `deps` names the raw assets and models it reads (its lineage edges)."""

    name: str
    layer: str  # "staging" (built once per sync) or "intermediate" (built per as-of day D)
    deps: tuple[str, ...]
    description: str
    view: bool = False

    @property
    def path(self) -> str:
        return f"{self.layer}/{self.name}.sql"

    @property
    def per_day(self) -> bool:
        return self.layer != "staging"


MODELS: tuple[Model, ...] = (
    Model(
        "stg_customers",
        "staging",
        ("raw_customers",),
        "Every CL document with an integer key, contact fields as the profile shows them and created_date.",
    ),
    Model(
        "stg_purchases",
        "staging",
        ("raw_orders",),
        "Every purchase: status set and not excluded, selected sales channels, purchase date in the "
        "store time zone, value in cents, coupon normalized, alias e-mails blanked.",
    ),
    Model(
        "stg_order_customer",
        "staging",
        ("stg_customers", "stg_purchases"),
        "Purchase -> CL document: userProfileId, then e-mail, then document (NULL when unresolved).",
    ),
    Model(
        "stg_order_items",
        "staging",
        ("raw_orders", "raw_catalog", "stg_purchases"),
        "Items of the purchases with product, category and brand names (catalog first, then fallbacks), "
        "dictionary-encoded as the ENUM type profile_name.",
    ),
    Model(
        "int_purchases",
        "intermediate",
        ("stg_customers", "stg_purchases", "stg_order_customer"),
        "Resolved purchases up to D of customers created by D, with days_ago and seq (1 = last purchase).",
    ),
    Model(
        "int_windows",
        "intermediate",
        ("int_purchases",),
        "One row per buyer as of D: purchases, cents and recency per window 30/60/90/180/360/360+.",
    ),
    Model(
        "int_items",
        "intermediate",
        ("int_purchases", "stg_order_items"),
        "Items of int_purchases with customer, seq and days_ago (a view).",
        view=True,
    ),
    Model(
        "int_lists",
        "intermediate",
        ("int_purchases", "int_windows", "int_items"),
        "Product, category and coupon lists per buyer as of D (360-day and 360+ lists, prefix lengths "
        "of the shorter windows).",
    ),
    Model(
        "int_last_purchase",
        "intermediate",
        ("int_purchases", "int_items"),
        "Brands, categories and coupon of each buyer's last purchase as of D.",
    ),
    Model(
        "int_rfm",
        "intermediate",
        ("int_windows",),
        "RFM codes per window, lifetime R and F, and the RFM group and segment (seed) per buyer as of D.",
    ),
)
BY_NAME: dict[str, Model] = {m.name: m for m in MODELS}
# What the mart (sql/marts/customer_profile.sql) and the predictions read.
PROFILE_DEPS = ("stg_customers", "int_purchases", "int_windows", "int_lists", "int_last_purchase", "int_rfm")
# The raw tables staging reads, each with the column its loads set to the time of the load (None: its
# rows are only ever replaced together with their order's). Row counts and newest load times say
# whether raw changed since a staging table was built, as dbt's source freshness reads a
# `loaded_at_field`: a few column maxima, milliseconds at 5M orders, where rebuilding costs seconds.
RAW_LOADED_AT: dict[str, str | None] = {
    "raw_customers": "synced_at",
    "raw_orders": "synced_at",
    "raw_order_items": None,
    "raw_products": "fetched_at",
    "raw_categories": "fetched_at",
    "raw_brands": "fetched_at",
}


class StaleUpstreamError(RuntimeError):
    """An upstream model is missing or holds another as-of day: materialize it for this day first."""


def named_parameters(where: str, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters a statement names (DuckDB rejects extras), or a clear error for a missing one."""
    names = set(_PARAM.findall(query))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"{where}: no value for parameter(s) {sorted(missing)}")
    return {k: params[k] for k in names} if names else None


def run_sql_file(conn: duckdb.DuckDBPyConnection, relative: str, params: dict[str, Any]) -> None:
    """Run each statement of `sql/<relative>` with the parameters it names."""
    for stmt in duckdb.extract_statements(read_sql(relative)):
        conn.execute(stmt, named_parameters(relative, stmt.query, params))


def prepare_models(conn: duckdb.DuckDBPyConnection) -> None:
    """The scalar macros the models use (TEMP: they live with the connection; cheap to re-create).
    profile_names() only once stg_order_items has made the type it binds."""
    run_sql_file(conn, MACROS_SQL, {})
    if conn.execute(
        "SELECT count(*) FROM duckdb_types() WHERE type_name = 'profile_name' AND database_name = current_database()"
    ).fetchone()[0]:
        run_sql_file(conn, NAMES_MACRO_SQL, {})


def model_select(relative: str) -> tuple[list[str], str]:
    """(setup statements, final SELECT) of a model file."""
    stmts = [s.query.strip().rstrip(";") for s in duckdb.extract_statements(read_sql(relative))]
    return stmts[:-1], stmts[-1]


def is_stored(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether table or view `name` is stored in the current database (TEMP copies do not count)."""
    return bool(
        conn.execute(
            "SELECT count(*) FROM (SELECT table_name AS n, database_name AS db, schema_name AS s, temporary "
            "FROM duckdb_tables() UNION ALL SELECT view_name, database_name, schema_name, temporary "
            "FROM duckdb_views()) WHERE n = ? AND db = current_database() AND s = 'main' AND NOT temporary",
            [name],
        ).fetchone()[0]
    )


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def staging_fingerprints(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, str]:
    """What each staging table would be built from now: its SQL text, the parameters it names, the
    raw tables' row counts and newest load times, and the fingerprints of the staging models it reads
    (so an edited `stg_purchases.sql` also rebuilds `stg_order_customer`)."""
    # one UNION ALL: DuckDB plans it in about a millisecond, eleven scalar subqueries in about twenty,
    # and the profile asks once per model (a property test computes hundreds of small profiles)
    raw = sorted(
        conn.execute(
            " UNION ALL ".join(
                f"SELECT '{t}', count(*), {f'max({c})' if c else 'NULL'}::VARCHAR FROM {t}"
                for t, c in RAW_LOADED_AT.items()
            )
        ).fetchall()
    )
    out: dict[str, str] = {}
    for m in MODELS:
        if not m.per_day:
            text = read_sql(m.path)
            used = {k: params[k] for k in sorted(set(_PARAM.findall(text)))}
            out[m.name] = _digest(text, used, raw, [out[d] for d in m.deps if d in out])
    return out


def staging_version(fingerprints: dict[str, str]) -> str:
    """One value for the whole staging layer: what a per-day model records it was built on."""
    return _digest(sorted(fingerprints.items()))


def _builds_table(conn: duckdb.DuckDBPyConnection) -> None:
    # the plain statement, not `apply_schema` (a catalog scan per call, and models ask per build):
    # the table has had one shape so far; a column added later must go through apply_schema
    conn.execute(read_sql(BUILDS_SQL))


def _built_from(conn: duckdb.DuckDBPyConnection, name: str) -> str | None:
    _builds_table(conn)
    row = conn.execute("SELECT built_from FROM model_builds WHERE model = ?", [name]).fetchone()
    return row[0] if row else None


def _record_build(conn: duckdb.DuckDBPyConnection, name: str, built_from: str) -> None:
    _builds_table(conn)
    conn.execute("INSERT OR REPLACE INTO model_builds VALUES (?, ?, now())", [name, built_from])


def upstream_tables(name: str) -> list[str]:
    """The stored models `name` reads, directly or through views: staging tables and per-day tables."""
    out: list[str] = []
    for dep in BY_NAME[name].deps if name in BY_NAME else PROFILE_DEPS:
        model = BY_NAME.get(dep)
        if model is None:
            continue  # a raw table
        for t in upstream_tables(dep) if model.view else [dep]:
            if t not in out:
                out.append(t)
    return out


def check_upstream(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    params: dict[str, Any],
    fingerprints: dict[str, str] | None = None,
) -> None:
    """Refuse to build `name` for D when a model it reads is missing, holds another day, or was built
    from inputs that changed since (raw synced again, a staging SQL or parameter edited)."""
    as_of = params["as_of"]
    fingerprints = fingerprints or staging_fingerprints(conn, params)
    for table in upstream_tables(name):
        if not is_stored(conn, table):
            raise StaleUpstreamError(f"{name} reads {table}, which does not exist: materialize it first")
        built_from = _built_from(conn, table)
        if not BY_NAME[table].per_day:
            if built_from != fingerprints[table]:
                raise StaleUpstreamError(
                    f"{name} reads {table}, which was built before raw or its SQL or parameters "
                    f"changed (a sync since, or an edit): materialize the staging models first"
                )
            continue
        other = conn.execute(
            f"SELECT min(as_of) FROM {table} WHERE as_of IS DISTINCT FROM ?", [as_of]
        ).fetchone()[0]
        if other is not None:
            raise StaleUpstreamError(
                f"{name} as of {as_of} reads {table}, which holds {other}: "
                f"materialize {table} for {as_of} first"
            )
        if built_from != staging_version(fingerprints):
            raise StaleUpstreamError(
                f"{name} reads {table}, which was built on staging tables rebuilt since (a sync): "
                f"materialize {table} for {as_of} again"
            )


def _current(conn: duckdb.DuckDBPyConnection, name: str, fingerprints: dict[str, str]) -> bool:
    return is_stored(conn, name) and _built_from(conn, name) == fingerprints[name]


def build_staging(conn: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any]) -> bool:
    """Build staging model `name` unless it is current (it exists and was built from the inputs it
    would be built from now). Returns whether it was rebuilt: the daily run after a sync reuses
    what the sync built, and a run after a feed batch or a failed sync rebuilds what changed."""
    fingerprints = staging_fingerprints(conn, params)
    if _current(conn, name, fingerprints):
        return False
    run_model(conn, name, params, fingerprints=fingerprints)
    return True


def build_staging_layer(conn: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, float]:
    """`build_staging` for every staging model, in order, fingerprinting raw once (a rebuild changes
    no fingerprint: they are of the inputs). Returns {model: seconds} of those rebuilt."""
    fingerprints = staging_fingerprints(conn, params)
    rebuilt: dict[str, float] = {}
    for m in MODELS:
        if not m.per_day and not _current(conn, m.name, fingerprints):
            t0 = time.perf_counter()
            run_model(conn, m.name, params, fingerprints=fingerprints)
            rebuilt[m.name] = round(time.perf_counter() - t0, 3)
    return rebuilt


def run_model(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    params: dict[str, Any],
    *,
    temp: bool = False,
    check: bool = True,
    fingerprints: dict[str, str] | None = None,
) -> None:
    """Build model `name`: its setup statements, then CREATE OR REPLACE [TEMP] TABLE|VIEW AS its SELECT.

    `temp` builds a per-day model as a TEMP table that shadows the stored one (an older date of a
    backfill, the dashboard's profile of the day before), so the stored tables keep the newest day."""
    model = BY_NAME[name]
    setup, select = model_select(model.path)
    checked = model.per_day and check and not temp
    if checked or not model.per_day:  # what the build is checked against and recorded as built from
        fingerprints = fingerprints or staging_fingerprints(conn, params)
    if checked:
        check_upstream(conn, name, params, fingerprints)
    if model.per_day:
        prepare_models(conn)
    for stmt in setup:
        conn.execute(stmt, named_parameters(model.path, stmt, params))
    kind = "VIEW" if model.view else "TABLE"
    if model.view and _PARAM.search(select):
        raise ValueError(f"{model.path}: a view cannot take parameters")
    scope = "TEMP " if temp and model.per_day else ""
    conn.execute(
        f"CREATE OR REPLACE {scope}{kind} {name} AS {select}",
        named_parameters(model.path, select, params),
    )
    # after the table: a crash in between leaves the older record, which only costs a rebuild
    if not model.per_day:
        _record_build(conn, name, fingerprints[name])
    elif checked:
        _record_build(conn, name, staging_version(fingerprints))


def drop_temp_models(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop the TEMP copies `run_model(temp=True)` made, so the stored tables show through again."""
    for m in MODELS:
        conn.execute(f"DROP {'VIEW' if m.view else 'TABLE'} IF EXISTS temp.{m.name}")
