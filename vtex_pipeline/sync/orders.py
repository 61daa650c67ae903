"""Orders: list a creation window (split under the 30-page cap), fetch each detail, load by window.

Also re-lists a look-back before the window and re-fetches only orders whose listed status differs
from the stored one (payment, invoice, cancellation happen after creation), plus any order the list
index showed late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import duckdb

from vtex_pipeline.config import ORDER_HORIZON_DAYS, IntegrationConfig
from vtex_pipeline.interrupts import deferred_interrupts
from vtex_pipeline.partitions import WINDOW, partition_key_for
from vtex_pipeline.sync.report import SyncReport
from vtex_pipeline.vtex.dates import parse_vtex_datetime
from vtex_pipeline.vtex.errors import RecordError, VtexNotFound
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.orders import fetch_orders, list_orders
from vtex_pipeline.vtex.records import order_rows
from vtex_pipeline.warehouse.raw_loads import (
    as_json,
    mark_partitions_synced,
    record_rejections,
    set_watermark,
    synced_partition_keys,
    upsert_orders,
)

log = logging.getLogger("vtex_pipeline.sync.orders")
Progress = Callable[..., None]  # (label, done, total, fraction=None)


def _chunks(start: datetime, end: datetime, days: int) -> Iterable[tuple[datetime, datetime]]:
    step = timedelta(days=max(days, 1))
    a = start
    while a < end:
        b = min(a + step, end)
        yield a, b
        a = b


def fetch_and_parse(
    client: VtexClient, ids: list[str], progress: Callable[[int], None] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str | None, str, Any]]]:
    orders: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    rejections: list[tuple[str | None, str, Any]] = []
    done = 0
    for order_id, detail, exc in fetch_orders(client, ids):
        done += 1
        if progress and done % 100 == 0:
            progress(done)
        if exc is not None:
            if isinstance(exc, VtexNotFound):
                rejections.append((order_id, "not found: listed but the detail returned 404", None))
                continue
            raise exc
        try:
            row, item_rows = order_rows(detail)
        except RecordError as err:
            rejections.append((order_id, f"malformed order: {err}", detail))
            continue
        row["partition_key"] = partition_key_for(row["creation_date"])
        row["record"] = as_json(detail)
        for it in item_rows:
            it["partition_key"] = row["partition_key"]
        orders.append(row)
        items.extend(item_rows)
    return orders, items, rejections


def sync_orders(
    client: VtexClient,
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    run_id: str = "",
    progress: Progress | None = None,
) -> SyncReport:
    """Sync orders created in [start, end), in chunks committed one by one, then the look-back."""
    report = SyncReport("orders")
    horizon = now - timedelta(days=ORDER_HORIZON_DAYS)
    channels = cfg.sales_channel_set
    synced_at = now
    for a, b in _chunks(start, end, cfg.sync_chunk_days):
        chunk_keys = [partition_key_for(a + i * WINDOW) for i in range(int((b - a) / WINDOW))]
        if b <= horizon:
            report.add("windows_beyond_horizon", len(chunk_keys))
            mark_partitions_synced(conn, "orders", chunk_keys)
            continue
        summaries = list_orders(client, a, b, sales_channels=channels)
        report.add("orders_listed", len(summaries))
        ids = [s["orderId"] for s in summaries]
        fetched_before = report.counts.get("orders_fetched", 0)
        share = (b - start) / (end - start)

        def tick(done: int, _before: int = fetched_before, _share: float = share) -> None:
            if progress:
                progress("orders", _before + done, None, _share)

        orders, items, rejections = fetch_and_parse(client, ids, tick)
        report.add("orders_fetched", len(ids))
        if progress and ids:
            progress("orders", report.counts["orders_fetched"], None, share)
        for o in orders:
            o["synced_at"] = synced_at
        first_key = partition_key_for(a)
        last_key = partition_key_for(b - timedelta(microseconds=1))
        with deferred_interrupts():  # a cancel stops the run between chunks, never inside one
            written = upsert_orders(
                conn, orders, items, replace_partitions=(first_key, last_key), replace_since=horizon
            )
            record_rejections(conn, "orders", rejections, partition_key=first_key)
            mark_partitions_synced(conn, "orders", chunk_keys)
        report.add("orders_written", written["orders_written"])
        report.add("items_written", written["items_written"])
        report.add("orders_removed", written["orders_removed"])
        report.rejected.extend((rid, reason) for rid, reason, _ in rejections)
        log.info("orders %s..%s: %d listed, %d written", a.isoformat(), b.isoformat(), len(ids), len(orders))

    lb_start = max(start - timedelta(days=cfg.order_lookback_days), horizon)
    if lb_start < start:
        _lookback(client, conn, cfg, lb_start, start, report, progress, synced_at)
    set_watermark(conn, "orders", min(end, now), run_id)
    return report


def _lookback(
    client: VtexClient,
    conn: duckdb.DuckDBPyConnection,
    cfg: IntegrationConfig,
    start: datetime,
    end: datetime,
    report: SyncReport,
    progress: Progress | None,
    synced_at: datetime,
) -> None:
    summaries = list_orders(client, start, end, sales_channels=cfg.sales_channel_set)
    stored = dict(
        conn.execute(
            "SELECT order_id, status FROM raw_orders WHERE creation_date >= ? AND creation_date < ?",
            [start, end],
        ).fetchall()
    )
    # Orders missing from the store are fetched only when their window was synced already (the list
    # index showed them late); windows never synced are left to their own partition's run.
    synced = synced_partition_keys(conn, "orders", partition_key_for(start), partition_key_for(end))
    changed = []
    for s in summaries:
        oid = s["orderId"]
        if oid in stored:
            if stored[oid] != s.get("status"):
                changed.append(oid)
        elif partition_key_for(parse_vtex_datetime(s["creationDate"])) in synced:
            changed.append(oid)
    report.add("lookback_listed", len(summaries))
    report.add("lookback_changed", len(changed))
    if not changed:
        return
    orders, items, rejections = fetch_and_parse(
        client,
        changed,
        (lambda done: progress("orders (look-back)", done, len(changed))) if progress else None,
    )
    for o in orders:
        o["synced_at"] = synced_at
    written = upsert_orders(conn, orders, items)
    record_rejections(conn, "orders", rejections, partition_key=None)
    report.add("orders_written", written["orders_written"])
    report.add("items_written", written["items_written"])
    report.add("lookback_updated", written["orders_replaced"])
    report.add("lookback_new", written["orders_written"] - written["orders_replaced"])
    report.rejected.extend((rid, reason) for rid, reason, _ in rejections)
