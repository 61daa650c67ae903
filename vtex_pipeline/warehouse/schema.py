"""Create or extend the persistent tables: an upgraded DuckDB file gains the columns a newer release
added and keeps its rows.

Every persistent table is declared once as `CREATE TABLE IF NOT EXISTS <name> (...)` (raw tables,
the profile's run log, the predictions' tables, the icomm delta state). On a new file that creates it;
on a file written by an older release, `IF NOT EXISTS` alone would leave the old, narrower table, and
the first insert naming a new column would fail. `create_or_extend` adds every declared column the
stored table lacks (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`, with the declared type and default).
Constraints of an added column (NOT NULL, keys) are not back-filled: old rows hold NULL there, which
is what "not recorded then" means. The declared shape is read once per process from a scratch
in-memory database, so a current file costs one catalog query per call (every connection applies the
raw schema).
"""

from __future__ import annotations

import re
from functools import cache

import duckdb

_CREATE = re.compile(r"^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.I)
_LEADING_COMMENTS = re.compile(r"^(?:\s*--[^\n]*(?:\n|$))+")
Column = tuple[str, str, str | None]  # name, type, default


@cache
def declared_columns(ddl: str) -> tuple[str, tuple[Column, ...]]:
    """(table, its columns in order) as the statement declares them."""
    m = _CREATE.match(ddl)
    if m is None:
        raise ValueError(f"not a CREATE TABLE IF NOT EXISTS statement: {ddl[:80]!r}")
    with duckdb.connect() as scratch:
        scratch.execute(ddl)
        cols = scratch.execute(
            """SELECT column_name, data_type, column_default FROM duckdb_columns()
               WHERE table_name = ? ORDER BY column_index""",
            [m.group(1)],
        ).fetchall()
    return m.group(1), tuple(cols)


def _stored(conn: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = conn.execute(
        """SELECT table_name, list(column_name) FROM duckdb_columns()
           WHERE schema_name = 'main' AND database_name = current_database() AND NOT internal GROUP BY 1"""
    ).fetchall()
    return {t: set(cols) for t, cols in rows}


def create_or_extend(
    conn: duckdb.DuckDBPyConnection, ddl: str, stored: dict[str, set[str]] | None = None
) -> list[str]:
    """Run one `CREATE TABLE IF NOT EXISTS` statement; if the table was already there, add the
    declared columns it lacks. Returns the columns added (empty for a new or current table)."""
    table, declared = declared_columns(ddl)
    have = (stored if stored is not None else _stored(conn)).get(table)
    if have is None:
        conn.execute(ddl)
        return []
    added = []
    for column, kind, default in declared:
        if column not in have:
            extra = f" DEFAULT {default}" if default is not None else ""
            conn.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" {kind}{extra}')
            added.append(column)
    return added


def apply_schema(conn: duckdb.DuckDBPyConnection, sql: str) -> dict[str, list[str]]:
    """Each statement of `sql`: CREATE TABLE IF NOT EXISTS through `create_or_extend`, others as they
    are. Returns {table: columns added} for the tables that gained columns."""
    stored = _stored(conn)
    added: dict[str, list[str]] = {}
    for stmt in duckdb.extract_statements(sql):
        query = _LEADING_COMMENTS.sub("", stmt.query)  # a file's comments stay with the statement after them
        m = _CREATE.match(query)
        if m is None:
            conn.execute(stmt)
        elif cols := create_or_extend(conn, query, stored):
            added[m.group(1)] = cols
    return added
