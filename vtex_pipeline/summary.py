"""The terminal summary printed after `demo`: what the raw layer holds, beside the simulator's counts."""

from __future__ import annotations

import requests
from rich.console import Console
from rich.table import Table

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.warehouse.connection import connect


def warehouse_counts(cfg: IntegrationConfig) -> dict[str, object]:
    with connect(cfg.duckdb_path) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "customers": one("SELECT count(*) FROM raw_customers"),
            "orders": one("SELECT count(*) FROM raw_orders"),
            "items": one("SELECT count(*) FROM raw_order_items"),
            "orders_by_status": dict(
                conn.execute(
                    "SELECT coalesce(status, 'null'), count(*) FROM raw_orders GROUP BY 1 ORDER BY 2 DESC"
                ).fetchall()
            ),
            "products": one("SELECT count(*) FILTER (WHERE found) FROM raw_products"),
            "products_missing": one("SELECT count(*) FILTER (WHERE NOT found) FROM raw_products"),
            "skus": one("SELECT count(*) FILTER (WHERE found) FROM raw_skus"),
            "categories": one("SELECT count(*) FROM raw_categories"),
            "brands": one("SELECT count(*) FROM raw_brands"),
            "sales_channels": one("SELECT count(*) FROM raw_sales_channels"),
            "rejected": one("SELECT count(*) FROM raw_rejected_records"),
        }


def print_summary(
    console: Console, cfg: IntegrationConfig, *, store_url: str | None = None
) -> dict[str, object]:
    counts = warehouse_counts(cfg)
    sim: dict = {}
    if store_url:
        try:
            sim = requests.get(f"{store_url}/_sim/stats", timeout=10).json()
        except (requests.RequestException, ValueError):
            sim = {}
    table = Table(title=f"raw layer of '{cfg.name}' ({cfg.duckdb_path})")
    table.add_column("what")
    table.add_column("in DuckDB", justify="right")
    if sim:
        table.add_column("in the store", justify="right")
    expected = {
        "customers": sim.get("customers"),
        "orders": sim.get("orders_listable"),
        "items": sim.get("items"),
    }
    for key in (
        "customers",
        "orders",
        "items",
        "products",
        "products_missing",
        "skus",
        "categories",
        "brands",
        "sales_channels",
        "rejected",
    ):
        row = [key.replace("_", " "), f"{counts[key]:,}"]
        if sim:
            row.append("" if expected.get(key) is None else f"{expected[key]:,}")
        table.add_row(*row)
    console.print(table)
    status = Table(title="orders by status")
    status.add_column("status")
    status.add_column("in DuckDB", justify="right")
    if sim:
        status.add_column("in the store", justify="right")
    for st, n in counts["orders_by_status"].items():
        row = [st, f"{n:,}"]
        if sim:
            row.append(f"{sim.get('orders_by_status', {}).get(st, 0):,}")
        status.add_row(*row)
    console.print(status)
    if sim.get("requests"):
        total = sum(sim["requests"].values())
        per_order = total / max(counts["orders"], 1)
        console.print(f"API requests served by the store: {total:,} ({per_order:.3f} per order synced)")
        counts["requests"] = total
    return counts
