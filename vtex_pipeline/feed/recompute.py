"""The profile of the customers behind some orders, recomputed for today, written over their rows.

The models of `sql/` run unchanged, over only the raw rows those customers need
(`sql/feed/feed_subset.sql` copies them into an in-memory catalog attached to the connection, so the
stored staging and intermediate tables of the daily run are never touched), and RFM and the
predictions are scored with the rules of the last daily run (`profile/reference.py`). The rows equal
what a full profile of the same instant, scored with the same reference, gives
(vtex_pipeline_tests/feed/test_feed_exactness.py). Plain Python, no Dagster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile.compute import RESULT_TABLE, compute_profile, drop_intermediates
from vtex_pipeline.profile.reference import Reference
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import transaction
from vtex_pipeline.warehouse.sql_files import read_sql

SCRATCH = "feed_scratch"
SUBSET_SQL = "feed/feed_subset.sql"
SUBSET_TEMP_TABLES = ("feed_order_keys", "feed_customers", "feed_customer_keys", "feed_candidate_keys")


@dataclass
class Recomputed:
    """What a recompute did: the customers whose rows were replaced, and how long each part took."""

    customers: list[str] = field(default_factory=list)
    orders_read: int = 0
    customers_read: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _database(conn: duckdb.DuckDBPyConnection) -> str:
    return str(conn.execute("SELECT current_database()").fetchone()[0])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def recompute_customers(
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    settings: ProfileSettings,
    order_ids: Sequence[str],
    as_of: date,
    reference: Reference,
) -> Recomputed:
    """Replace the `customer_profile` rows of the customers who can own `order_ids` with their profile
    as of `as_of`, scored with `reference`; one transaction (readers see the old or the new rows).

    The connection is the account's file with the raw tables already holding the orders' latest
    versions; it must not be inside a transaction. Customers created after `as_of` are left alone."""
    out = Recomputed()
    if not order_ids:
        return out
    home = _database(conn)
    t0 = time.perf_counter()
    conn.execute(f"DETACH DATABASE IF EXISTS {SCRATCH}")
    conn.execute(f"ATTACH ':memory:' AS {SCRATCH}")
    try:
        for stmt in duckdb.extract_statements(read_sql(SUBSET_SQL)):
            params = {"order_ids": list(order_ids)} if "$order_ids" in stmt.query else None
            conn.execute(stmt.query, params)
        affected = [
            r[0] for r in conn.execute("SELECT customer_id FROM feed_customers ORDER BY 1").fetchall()
        ]
        out.orders_read = int(conn.execute(f"SELECT count(*) FROM {SCRATCH}.raw_orders").fetchone()[0])
        out.customers_read = int(conn.execute(f"SELECT count(*) FROM {SCRATCH}.raw_customers").fetchone()[0])
        out.seconds["subset"] = round(time.perf_counter() - t0, 3)
        if not affected:
            return out
        t0 = time.perf_counter()
        conn.execute(f"USE {SCRATCH}")
        try:
            stats = compute_profile(
                conn, cfg, settings, as_of, write=False, keep_intermediates=True, reference=reference
            )
        finally:
            conn.execute(f"USE {_quote(home)}")
        out.seconds["profile"] = round(time.perf_counter() - t0, 3)
        out.seconds["profile_steps"] = stats["steps"]  # type: ignore[assignment]
        t0 = time.perf_counter()
        with transaction(conn):
            conn.execute(
                "DELETE FROM main.customer_profile WHERE customer_id IN (SELECT customer_id FROM feed_customers)"
            )
            conn.execute(
                f"""INSERT INTO main.customer_profile BY NAME
                    SELECT * FROM temp.{RESULT_TABLE}
                    WHERE customer_id IN (SELECT customer_id FROM feed_customers)"""
            )
        out.customers = [
            r[0]
            for r in conn.execute(
                f"SELECT customer_id FROM temp.{RESULT_TABLE} "
                "WHERE customer_id IN (SELECT customer_id FROM feed_customers) ORDER BY 1"
            ).fetchall()
        ]
        out.seconds["write"] = round(time.perf_counter() - t0, 3)
        return out
    finally:
        drop_intermediates(conn)
        for table in SUBSET_TEMP_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.execute(f"DETACH DATABASE IF EXISTS {SCRATCH}")


def profile_rows(conn: duckdb.DuckDBPyConnection, customers: Sequence[str]) -> list[tuple[Any, ...]]:
    """The `customer_profile` rows of `customers` (tests and the benchmark compare them)."""
    return conn.execute(
        "SELECT * FROM main.customer_profile WHERE list_contains(?, customer_id) ORDER BY customer_id",
        [list(customers)],
    ).fetchall()
