"""Catalog: reference tables refreshed whole (tree, brands, sales channels); the products and SKUs
that orders refer to fetched once and refreshed when stale. A 404 is stored as `found = false` so the
profile falls back to the order's own names and the next run does not ask again until it is stale."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.sync.report import SyncReport
from vtex_pipeline.vtex import catalog as api
from vtex_pipeline.vtex.errors import RecordError, VtexNotFound
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.records import brand_row, category_rows, product_row, sales_channel_row, sku_row
from vtex_pipeline.warehouse.raw_loads import as_json, record_rejections, replace_table, upsert_by_id


def _ids_to_fetch(conn: duckdb.DuckDBPyConnection, kind: str, stale_before: datetime) -> list[str]:
    col = "product_id" if kind == "products" else "sku_id"
    rows = conn.execute(
        f"""
        SELECT DISTINCT i.{col} FROM raw_order_items i
        LEFT JOIN raw_{kind} c ON c.{col} = i.{col}
        WHERE i.{col} IS NOT NULL AND (c.{col} IS NULL OR c.fetched_at < ?)
        ORDER BY 1
        """,
        [stale_before],
    ).fetchall()
    return [r[0] for r in rows]


def _reference_rows(records: list[dict[str, Any]], parse, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        row = parse(rec)
        row.update(fetched_at=now, record=as_json(rec))
        rows.append(row)
    return rows


def sync_catalog(
    client: VtexClient, conn: duckdb.DuckDBPyConnection, cfg: IntegrationConfig, *, now: datetime
) -> SyncReport:
    report = SyncReport("catalog")
    channels = _reference_rows(api.list_sales_channels(client), sales_channel_row, now)
    report.add("sales_channels", replace_table(conn, "raw_sales_channels", channels))

    tree = api.get_category_tree(client)
    cats = category_rows(tree)
    for c in cats:
        c["fetched_at"] = now
        c["record"] = as_json({k: v for k, v in c.items() if k not in ("fetched_at", "record")})
    report.add("categories", replace_table(conn, "raw_categories", cats))

    brands = _reference_rows(api.list_brands(client), brand_row, now)
    report.add("brands", replace_table(conn, "raw_brands", brands))

    stale_before = now - timedelta(days=cfg.catalog_stale_days)
    for kind, fetch, parse, key in (
        ("products", api.fetch_products, product_row, "product_id"),
        ("skus", api.fetch_skus, sku_row, "sku_id"),
    ):
        ids = _ids_to_fetch(conn, kind, stale_before)
        rows: list[dict[str, Any]] = []
        rejections: list[tuple[str | None, str, Any]] = []
        for rid, rec, exc in fetch(client, ids):
            if exc is not None and not isinstance(exc, VtexNotFound):
                raise exc
            if rec is None:
                rows.append({key: rid, "found": False, "fetched_at": now})
                report.add(f"{kind}_missing")
                continue
            try:
                row = parse(rec)
            except RecordError as err:
                rejections.append((rid, f"malformed {kind[:-1]}: {err}", rec))
                continue
            row.update(found=True, fetched_at=now, record=as_json(rec))
            rows.append(row)
        result = upsert_by_id(conn, f"raw_{kind}", key, rows)
        record_rejections(conn, kind, rejections, partition_key=None)
        report.add(f"{kind}_fetched", result["written"])
        report.rejected.extend((rid, reason) for rid, reason, _ in rejections)
    return report
