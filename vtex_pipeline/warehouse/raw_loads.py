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
import pyarrow as pa

_columns_cache: dict[str, list[str]] = {}


def table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Column names of `table` in declaration order."""
    if table not in _columns_cache:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        _columns_cache[table] = [r[0] for r in rows]
    return _columns_cache[table]


def _to_arrow(rows: Sequence[dict[str, Any]], columns: list[str]) -> pa.Table:
    data = {c: [r.get(c) for r in rows] for c in columns}
    return pa.table(data)


def insert_rows(conn: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert row dicts (keys = column names; missing keys are NULL) through Arrow, in bulk."""
    if not rows:
        return 0
    columns = table_columns(conn, table)
    arrow = _to_arrow(rows, columns)
    view = f"_incoming_{table}"
    conn.register(view, arrow)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {view}")
    finally:
        conn.unregister(view)
    return len(rows)


def _ids_view(conn: duckdb.DuckDBPyConnection, name: str, ids: Iterable[str]) -> None:
    conn.register(name, pa.table({"id": pa.array(list(ids), type=pa.string())}))


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
    conn.execute("BEGIN TRANSACTION")
    try:
        _ids_view(conn, "_order_ids", (o["order_id"] for o in orders))
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
        conn.unregister("_order_ids")
        n_orders = insert_rows(conn, "raw_orders", orders)
        n_items = insert_rows(conn, "raw_order_items", items)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
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
    conn.execute("BEGIN TRANSACTION")
    try:
        _ids_view(conn, "_upsert_ids", (r[key] for r in unique))
        replaced = conn.execute(
            f"SELECT count(*) FROM {table} WHERE {key} IN (SELECT id FROM _upsert_ids)"
        ).fetchone()[0]
        conn.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT id FROM _upsert_ids)")
        conn.unregister("_upsert_ids")
        written = insert_rows(conn, table, unique)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"written": written, "replaced": int(replaced)}


def replace_table(conn: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Swap the whole content of a small reference table (category tree, brands, sales channels)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {table}")
        n = insert_rows(conn, table, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
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
        _ids_view(conn, "_rejected_ids", ids)
        conn.execute(
            "DELETE FROM raw_rejected_records WHERE source = ? AND record_id IN (SELECT id FROM _rejected_ids)",
            [source],
        )
        conn.unregister("_rejected_ids")
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
    conn.register("_synced_keys", pa.table({"k": pa.array(list(keys), type=pa.string())}))
    conn.execute(
        """INSERT INTO synced_partitions SELECT ?, k, ? FROM _synced_keys
           ON CONFLICT (source, partition_key) DO UPDATE SET synced_at = excluded.synced_at""",
        [source, now],
    )
    conn.unregister("_synced_keys")


def synced_partition_keys(conn: duckdb.DuckDBPyConnection, source: str, first: str, last: str) -> set[str]:
    rows = conn.execute(
        "SELECT partition_key FROM synced_partitions WHERE source = ? AND partition_key BETWEEN ? AND ?",
        [source, first, last],
    ).fetchall()
    return {r[0] for r in rows}
