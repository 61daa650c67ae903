"""An upgraded DuckDB file: the persistent tables gain the columns added since, and keep their rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest

from vtex_pipeline.icomm.delta import ensure_tables
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline.warehouse.schema import apply_schema, create_or_extend

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]


def test_an_older_narrower_file_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as old:  # as an older release left it: fewer columns, with rows
        old.execute(
            "CREATE TABLE raw_orders (order_id VARCHAR PRIMARY KEY, creation_date TIMESTAMPTZ, status VARCHAR)"
        )
        old.execute("INSERT INTO raw_orders VALUES ('o1', ?, 'invoiced'), ('o2', ?, 'canceled')", [T0, T0])
        old.execute("CREATE TABLE icomm_sent (email VARCHAR PRIMARY KEY, hash VARCHAR NOT NULL)")
        old.execute("INSERT INTO icomm_sent VALUES ('a@example.com', 'h1')")

    with duckdb.connect(str(path)) as conn:
        prepare(conn)  # the raw schema
        ensure_tables(conn)  # the icomm delta state
        fresh = duckdb.connect()
        prepare(fresh)
        ensure_tables(fresh)
        for table in ("raw_orders", "icomm_sent"):
            assert sorted(_columns(conn, table)) == sorted(_columns(fresh, table)), table
        assert conn.execute("SELECT order_id, status FROM raw_orders ORDER BY 1").fetchall() == [
            ("o1", "invoiced"),
            ("o2", "canceled"),
        ]
        assert conn.execute("SELECT email, hash, sent_at FROM icomm_sent").fetchall() == [
            ("a@example.com", "h1", None)
        ]
        # the old key still holds, and a row naming the new columns goes in
        with pytest.raises(duckdb.ConstraintException):
            conn.execute("INSERT INTO raw_orders (order_id) VALUES ('o1')")
        conn.execute("INSERT INTO raw_orders (order_id, sales_channel) VALUES ('o3', '1')")
        assert conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0] == 3


def test_create_or_extend_adds_only_what_is_missing_with_its_default():
    conn = duckdb.connect()
    ddl = "CREATE TABLE IF NOT EXISTS runs (as_of DATE PRIMARY KEY, seconds DOUBLE, tries INTEGER DEFAULT 1)"
    assert create_or_extend(conn, ddl) == []  # new: created as declared
    conn.execute("CREATE OR REPLACE TABLE runs (as_of DATE PRIMARY KEY)")
    conn.execute("INSERT INTO runs VALUES (?)", [date(2025, 1, 2)])
    assert create_or_extend(conn, ddl) == ["seconds", "tries"]
    assert conn.execute("SELECT * FROM runs").fetchall() == [(date(2025, 1, 2), None, 1)]
    assert create_or_extend(conn, ddl) == []  # current: nothing to do
    assert apply_schema(conn, "SELECT 1; " + ddl) == {}
    assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
