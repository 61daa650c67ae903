"""Materialization metadata shared by the assets: row count, schema, preview, API figures."""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb
from tabulate import tabulate

from vtex_pipeline.sync.report import SyncReport


def table_metadata(
    conn: duckdb.DuckDBPyConnection, table: str, *, preview_rows: int = 5, lean: bool = False
) -> dict[str, Any]:
    """Row count, column schema and a markdown preview (without the bulky JSON column); `lean`: count only."""
    if lean:
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return {"dagster/row_count": int(count), "dagster/table_name": table}
    cols = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    shown = [c for c, _ in cols if c != "record"][:10]
    # fetchall + tabulate, as DataFrame.to_markdown does, without importing pandas into every sync run
    head = conn.execute(f"SELECT {', '.join(shown)} FROM {table} LIMIT {preview_rows}").fetchall()
    return {
        "dagster/row_count": int(count),
        "dagster/table_name": table,
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(c, t) for c, t in cols]),
        "preview": dg.MetadataValue.md(
            tabulate(head, headers=shown, tablefmt="pipe") if head else "_(empty)_"
        ),
    }


def model_metadata(conn: duckdb.DuckDBPyConnection, table: str, *, lean: bool = False) -> dict[str, Any]:
    """A model's row count and column schema, each column described from docs/attributes.md (the
    UI's table view shows them); `lean` (a view): the schema without counting its rows."""
    from vtex_pipeline.profile.attributes import column_descriptions

    described = column_descriptions()
    cols = conn.execute(
        """SELECT column_name, data_type FROM duckdb_columns()
           WHERE table_name = ? AND NOT internal ORDER BY column_index""",
        [table],
    ).fetchall()
    meta: dict[str, Any] = {
        "dagster/table_name": table,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(c, t, description=described.get(f"{table}.{c}") or described.get(c))
                for c, t in cols
            ]
        ),
    }
    if not lean:
        meta["dagster/row_count"] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return meta


def report_metadata(report: SyncReport) -> dict[str, Any]:
    meta: dict[str, Any] = {f"sync/{k}": int(v) for k, v in sorted(report.counts.items())}
    meta["sync/seconds"] = round(report.seconds, 3)
    meta["sync/rejected"] = len(report.rejected)
    if report.rejected:
        reasons = report.rejected_reasons()
        meta["sync/rejected_reasons"] = dg.MetadataValue.md(
            "| reason | records |\n|---|---|\n" + "\n".join(f"| {r} | {n} |" for r, n in reasons.items())
        )
    for k, v in report.api.items():
        if isinstance(v, int | float):
            meta[f"api/{k}"] = v
    return meta
