"""Customers (Master Data CL): everything on the first sync, then what was created or updated since the
watermark (with an overlap for indexing lag), upserted by document id."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.sync.orders import Progress
from vtex_pipeline.sync.report import SyncReport
from vtex_pipeline.vtex.errors import RecordError
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.masterdata import iter_customers
from vtex_pipeline.vtex.records import customer_row
from vtex_pipeline.warehouse.raw_loads import (
    as_json,
    get_watermark,
    record_rejections,
    set_watermark,
    upsert_by_id,
)

log = logging.getLogger("vtex_pipeline.sync.customers")
BATCH = 20_000


def sync_customers(
    client: VtexClient,
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    partition_key: str,
    run_id: str = "",
    progress: Progress | None = None,
) -> SyncReport:
    report = SyncReport("customers")
    watermark = get_watermark(conn, "customers")
    since = None if watermark is None else min(start, watermark)
    report.counts["full_sync"] = int(since is None)
    docs = iter_customers(
        client,
        since=since,
        until=None if since is None else end,
        overlap=timedelta(minutes=cfg.customer_overlap_minutes),
    )
    rows: list[dict[str, Any]] = []
    rejections: list[tuple[str | None, str, Any]] = []
    seen = 0

    def flush() -> None:
        result = upsert_by_id(conn, "raw_customers", "customer_id", rows)
        report.add("customers_written", result["written"])
        report.add("customers_updated", result["replaced"])
        rows.clear()

    for doc in docs:
        seen += 1
        try:
            row = customer_row(doc)
        except RecordError as err:
            rid = doc.get("id") if isinstance(doc, dict) else None
            rejections.append((rid, f"malformed customer: {err}", doc))
            continue
        row.update(partition_key=partition_key, synced_at=now, record=as_json(doc))
        rows.append(row)
        if len(rows) >= BATCH:
            flush()
        if progress and seen % 1000 == 0:
            progress("customers", seen, None)
    flush()
    record_rejections(conn, "customers", rejections, partition_key=partition_key)
    report.add("customers_fetched", seen)
    report.rejected.extend((rid, reason) for rid, reason, _ in rejections)
    set_watermark(conn, "customers", min(end, now), run_id)
    log.info("customers: %d fetched, %d rejected", seen, len(rejections))
    return report
