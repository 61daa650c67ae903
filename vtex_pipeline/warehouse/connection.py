"""Opening the DuckDB file: UTC session, raw schema applied, clear errors on a locked or unwritable file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from vtex_pipeline.warehouse.schema import apply_schema
from vtex_pipeline.warehouse.sql_files import read_sql


class WarehouseError(RuntimeError):
    """The DuckDB file cannot be opened or written."""


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB transaction around the block: committed at its end, rolled back when it raises
    (a cancel or KeyboardInterrupt included), so readers see all of its writes or none."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prepare(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings every connection needs, then the raw schema (idempotent; a file from an older
    release gains the raw columns added since, its rows kept)."""
    conn.execute("SET TimeZone = 'UTC'")
    apply_schema(conn, read_sql("raw/create_raw_tables.sql"))
    return conn


def held_file_message(exc: BaseException, database: str | Path) -> str | None:
    """The operator's words for DuckDB's lock error (a DuckDB CLI, a BI tool, a backup holding the file),
    or None for any other error."""
    held = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", str(exc))
    if not held:
        return None
    return (
        f"DuckDB file {database} is held by another process: {held.group(1)} (PID {held.group(2)}). "
        "DuckDB allows one writer per file: close that process (or open the file read-only) and re-run; "
        "nothing was written"
    )


@contextmanager
def connect(database: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A prepared connection to `database`, closed on exit even when the block raises."""
    path = Path(database)
    if str(database) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(str(database), read_only=read_only)
    except duckdb.IOException as exc:
        raise WarehouseError(
            held_file_message(exc, database) or f"cannot open DuckDB file {database}: {exc}"
        ) from exc
    try:
        if read_only:
            conn.execute("SET TimeZone = 'UTC'")
        else:
            prepare(conn)
        yield conn
    finally:
        conn.close()
