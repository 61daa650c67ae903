"""The terminal summary printed after `demo`: what the raw layer holds, beside the simulator's counts."""

from __future__ import annotations

import json

import requests
from rich.console import Console
from rich.table import Table

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.dashboard.kpis import dashboard_path
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


def profile_counts(cfg: IntegrationConfig) -> dict[str, object]:
    """Profile figures: customers, buyers, purchases, segments; empty when no profile was computed."""
    with connect(cfg.duckdb_path) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "customer_profile" not in tables:
            return {}
        row = conn.execute(
            """SELECT max(as_of), count(*), count(*) FILTER (WHERE rfm_group <> 'PROSPECTS'),
                      sum(orders_360d + orders_360plus) FROM customer_profile"""
        ).fetchone()
        segments = conn.execute(
            "SELECT rfm_segment, count(*) FROM customer_profile GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        sent = conn.execute("SELECT count(*) FROM icomm_sent").fetchone()[0] if "icomm_sent" in tables else 0
        predictions = None
        if "clv_runs" in tables:
            run = conn.execute(
                """SELECT model, status, reason, backtest_status, backtest_reason, backtest_predicted,
                          backtest_actual FROM clv_runs WHERE as_of = ?""",
                [row[0]],
            ).fetchone()
            fits = conn.execute(
                "SELECT model, params, log_likelihood, customers FROM clv_model WHERE as_of = ? ORDER BY 1",
                [row[0]],
            ).fetchall()
            predictions = {"run": run, "fits": fits}
    return {
        "as_of": row[0],
        "customers": row[1],
        "buyers": row[2],
        "purchases": int(row[3] or 0),
        "segments": segments,
        "contacts_in_icomm": sent,
        "predictions": predictions,
    }


def _print_predictions(console: Console, predictions: dict | None) -> None:
    if not predictions or not predictions["run"]:
        return
    model, status, reason, bt_status, bt_reason, bt_predicted, bt_actual = predictions["run"]
    if status != "fitted":
        console.print(f"predictions ({model}): {status}: {reason}")
        return
    for name, params, ll, n in predictions["fits"]:
        values = ", ".join(f"{k} {v:.4g}" for k, v in json.loads(params).items())
        console.print(f"predictions: {name} on {n:,} buyers: {values} (log-likelihood {ll:,.1f})")
    if bt_status == "fitted":
        off = f"{abs(bt_predicted - bt_actual) / bt_actual:.1%}" if bt_actual else "n/a"
        console.print(
            f"back-test: predicted {bt_predicted:,.1f} repeat purchase days over the last 90 days, "
            f"actual {bt_actual:,} ({off} off)"
        )
    else:
        console.print(f"back-test: {bt_status}: {bt_reason}")


def print_summary(
    console: Console, cfg: IntegrationConfig, *, store_url: str | None = None, icomm_url: str | None = None
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
    prof = profile_counts(cfg)
    if prof:
        console.print(
            f"profile as of {prof['as_of']}: {prof['customers']:,} customers, {prof['buyers']:,} buyers, "
            f"{prof['purchases']:,} purchases"
        )
        seg = Table(title="RFM segments")
        seg.add_column("segment")
        seg.add_column("customers", justify="right")
        for name, n in prof["segments"]:
            seg.add_row(name, f"{n:,}")
        console.print(seg)
        _print_predictions(console, prof.get("predictions"))
        counts["profile"] = prof
    if icomm_url:
        try:
            stats = requests.get(f"{icomm_url}/_sim/stats", timeout=10).json()
            contacts = requests.get(f"{icomm_url}/_sim/contacts", timeout=60).json()
        except (requests.RequestException, ValueError):
            stats, contacts = {}, []
        n_contacts = len(contacts) if isinstance(contacts, list | dict) else 0
        console.print(
            f"icomm: {n_contacts:,} contacts in the profile, {stats.get('accepted', 0):,} accepted in "
            f"{stats.get('requests', 0):,} requests (sent table: {prof.get('contacts_in_icomm', 0) if prof else 0:,})"
        )
        counts["icomm_contacts"] = n_contacts
    page = dashboard_path(cfg)
    if page.exists():
        console.print(f"dashboard (opens offline in a browser): {page}")
    return counts
