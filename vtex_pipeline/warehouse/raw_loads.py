"""Loads into the raw tables: delete what a sync replaces, then insert, in one transaction.

Every load is idempotent: loading the same records twice leaves the same rows. Orders are keyed by
`order_id` (one row per order, its latest version), customers by `customer_id`, catalog rows by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from vtex_pipeline.warehouse.connection import transaction

# Loads pass their rows to DuckDB as typed list parameters (`unnest(?::TYPE[])`), not as registered
# Arrow tables: the first Python object registered in a process makes DuckDB import pandas (~0.4 s of
# CPU), which was most of the work of a 4-hourly load of a few hundred orders, paid again by every run's
# new process. Lists cost more per value than Arrow (~1.4 µs per value against ~0.5), so a 1M-order
# first sync spends tens of seconds more CPU over its hours of API time.

_columns_cache: dict[str, list[tuple[str, str]]] = {}


def _column_types(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(column name, SQL type) of `table` in declaration order."""
    if table not in _columns_cache:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position",
            [table],
        ).fetchall()
        _columns_cache[table] = [(r[0], r[1]) for r in rows]
    return _columns_cache[table]


def insert_rows(conn: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert row dicts (keys = column names; missing keys are NULL) in one statement, a list per column."""
    if not rows:
        return 0
    typed = _column_types(conn, table)
    cols = ", ".join(f'"{c}"' for c, _ in typed)
    values = ", ".join(f"unnest(?::{t}[])" for _, t in typed)
    conn.execute(
        f"INSERT INTO {table} ({cols}) SELECT {values}", [[r.get(c) for r in rows] for c, _ in typed]
    )
    return len(rows)


def _ids_table(conn: duckdb.DuckDBPyConnection, name: str, ids: Iterable[str]) -> None:
    """A temporary one-column table `name(id)`, dropped with `_drop` (or by the transaction's rollback)."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT unnest(?::VARCHAR[]) AS id", [list(ids)])


def _drop(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")


def as_json(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def upsert_orders(
    conn: duckdb.DuckDBPyConnection,
    orders: Sequence[dict[str, Any]],
    items: Sequence[dict[str, Any]],
    *,
    replace_partitions: tuple[str, str] | None = None,
    replace_since: datetime | None = None,
) -> dict[str, int]:
    """Replace orders (and their items) by id; optionally clear a partition-key range first.

    `replace_partitions=(first_key, last_key)` deletes the stored orders of those 4-hour windows
    (inclusive) that are younger than `replace_since` — the API's two-year horizon — so that an order
    gone from a re-synced window disappears, while history older than the horizon, which VTEX no longer
    serves, is kept.
    """
    with transaction(conn):
        _ids_table(conn, "_order_ids", (o["order_id"] for o in orders))
        deleted_window = 0
        if replace_partitions is not None:
            first, last = replace_partitions
            since = replace_since or datetime(1970, 1, 1, tzinfo=UTC)
            deleted_window = conn.execute(
                """
                SELECT count(*) FROM raw_orders
                WHERE partition_key BETWEEN ? AND ? AND creation_date >= ?
                  AND order_id NOT IN (SELECT id FROM _order_ids)
                """,
                [first, last, since],
            ).fetchone()[0]
            conn.execute(
                """
                DELETE FROM raw_order_items WHERE order_id IN (
                    SELECT order_id FROM raw_orders
                    WHERE partition_key BETWEEN ? AND ? AND creation_date >= ?)
                """,
                [first, last, since],
            )
            conn.execute(
                "DELETE FROM raw_orders WHERE partition_key BETWEEN ? AND ? AND creation_date >= ?",
                [first, last, since],
            )
        conn.execute("DELETE FROM raw_order_items WHERE order_id IN (SELECT id FROM _order_ids)")
        existing = conn.execute(
            "SELECT count(*) FROM raw_orders WHERE order_id IN (SELECT id FROM _order_ids)"
        ).fetchone()[0]
        conn.execute("DELETE FROM raw_orders WHERE order_id IN (SELECT id FROM _order_ids)")
        conn.execute(
            "DELETE FROM raw_rejected_records WHERE source = 'orders' AND record_id IN (SELECT id FROM _order_ids)"
        )
        _drop(conn, "_order_ids")
        n_orders = insert_rows(conn, "raw_orders", orders)
        n_items = insert_rows(conn, "raw_order_items", items)
    return {
        "orders_written": n_orders,
        "items_written": n_items,
        "orders_replaced": int(existing),
        "orders_removed": int(deleted_window),
    }


def upsert_by_id(
    conn: duckdb.DuckDBPyConnection, table: str, key: str, rows: Sequence[dict[str, Any]]
) -> dict[str, int]:
    """Replace rows of `table` whose `key` matches an incoming row, then insert them."""
    if not rows:
        return {"written": 0, "replaced": 0}
    # Last occurrence wins when the source repeats a record (e.g. the same document on two pages).
    unique = list({r[key]: r for r in rows}.values())
    with transaction(conn):
        _ids_table(conn, "_upsert_ids", (r[key] for r in unique))
        replaced = conn.execute(
            f"SELECT count(*) FROM {table} WHERE {key} IN (SELECT id FROM _upsert_ids)"
        ).fetchone()[0]
        conn.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT id FROM _upsert_ids)")
        _drop(conn, "_upsert_ids")
        written = insert_rows(conn, table, unique)
    return {"written": written, "replaced": int(replaced)}


def replace_table(conn: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Swap the whole content of a small reference table (category tree, brands, sales channels)."""
    with transaction(conn):
        conn.execute(f"DELETE FROM {table}")
        n = insert_rows(conn, table, rows)
    return n


def record_rejections(
    conn: duckdb.DuckDBPyConnection,
    source: str,
    rejections: Sequence[tuple[str | None, str, Any]],
    *,
    partition_key: str | None,
) -> int:
    """Set malformed or unfetchable records aside with their reason (replacing earlier reports of the same id)."""
    if not rejections:
        return 0
    now = datetime.now(UTC)
    rows = [
        {
            "source": source,
            "record_id": rid,
            "partition_key": partition_key,
            "reason": reason[:2000],
            "record": None if record is None else as_json(record)[:100_000],
            "rejected_at": now,
        }
        for rid, reason, record in rejections
    ]
    ids = [r["record_id"] for r in rows if r["record_id"] is not None]
    if ids:
        _ids_table(conn, "_rejected_ids", ids)
        conn.execute(
            "DELETE FROM raw_rejected_records WHERE source = ? AND record_id IN (SELECT id FROM _rejected_ids)",
            [source],
        )
        _drop(conn, "_rejected_ids")
    return insert_rows(conn, "raw_rejected_records", rows)


def get_watermark(conn: duckdb.DuckDBPyConnection, source: str) -> datetime | None:
    row = conn.execute("SELECT watermark FROM sync_state WHERE source = ?", [source]).fetchone()
    return row[0] if row else None


def set_watermark(conn: duckdb.DuckDBPyConnection, source: str, watermark: datetime, run: str) -> None:
    """Advance (never rewind) the watermark of `source`."""
    conn.execute(
        """
        INSERT INTO sync_state (source, watermark, last_success_at, last_run) VALUES (?, ?, ?, ?)
        ON CONFLICT (source) DO UPDATE SET
            watermark = greatest(sync_state.watermark, excluded.watermark),
            last_success_at = excluded.last_success_at,
            last_run = excluded.last_run
        """,
        [source, watermark, datetime.now(UTC), run],
    )


def mark_partitions_synced(conn: duckdb.DuckDBPyConnection, source: str, keys: Sequence[str]) -> None:
    """Remember which 4-hour windows `source` has synced (idempotent)."""
    if not keys:
        return
    now = datetime.now(UTC)
    conn.execute(
        """INSERT INTO synced_partitions SELECT ?, unnest(?::VARCHAR[]), ?
           ON CONFLICT (source, partition_key) DO UPDATE SET synced_at = excluded.synced_at""",
        [source, list(keys), now],
    )


def synced_partition_keys(conn: duckdb.DuckDBPyConnection, source: str, first: str, last: str) -> set[str]:
    rows = conn.execute(
        "SELECT partition_key FROM synced_partitions WHERE source = ? AND partition_key BETWEEN ? AND ?",
        [source, first, last],
    ).fetchall()
    return {r[0] for r in rows}
