"""Test helpers: run the raw assets through Dagster and read the DuckDB file they wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb

from vtex_pipeline.assets.raw import INCREMENTAL_TAG, build_raw_assets
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import daily_partitions
from vtex_pipeline.resources import resources_for
from vtex_pipeline.vtex.dates import parse_vtex_datetime


def materialize_raw(
    cfg: IntegrationConfig,
    *,
    partition_key: str | None = None,
    first: str | None = None,
    last: str | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    incremental: bool = False,
) -> dg.ExecuteInProcessResult:
    """Materialize every raw asset (and its checks) for one day, or a range of days in a single run;
    `incremental` runs it as the schedule does (from the last synced window)."""
    tags: dict[str, str] = {INCREMENTAL_TAG: "true"} if incremental else {}
    if first is not None:
        tags.update(
            {
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last or first,
            }
        )
    return dg.materialize(
        build_raw_assets(cfg),
        resources=resources_for(cfg),
        partition_key=partition_key,
        tags=tags or None,
        instance=instance,
        raise_on_error=raise_on_error,
    )


def all_keys(cfg: IntegrationConfig) -> list[str]:
    return daily_partitions(cfg.start_date).get_partition_keys(current_time=datetime.now(UTC))


def query(cfg: IntegrationConfig, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(cfg.duckdb_path, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql, params or []).fetchall()


def table_checksum(
    cfg: IntegrationConfig, table: str, exclude: tuple[str, ...] = ("synced_at", "fetched_at")
) -> tuple:
    """Order-independent checksum of a table's rows over every column but the sync timestamps."""
    cols = [
        r[0]
        for r in query(
            cfg, "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        )
        if r[0] not in exclude
    ]
    collist = ", ".join(cols)
    return query(cfg, f"SELECT count(*), sum(hash({collist})) FROM (SELECT {collist} FROM {table})")[0]


def orders_created_in(fixture: dict[str, Any], start: datetime, end: datetime, now: datetime) -> set[str]:
    """Order ids of the fixture created in [start, end) at ms precision and inside the 2-year horizon."""
    horizon = now - timedelta(days=730)
    out = set()
    for o in fixture["orders"]:
        ts = parse_vtex_datetime(o["creationDate"])
        ts = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
        if start <= ts < end and ts >= horizon:
            out.add(o["orderId"])
    return out


def window_of(key: str) -> tuple[datetime, datetime]:
    """[start, end) of a day partition key, UTC."""
    start = datetime.fromisoformat(key).replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from /proc."""
    import os
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
