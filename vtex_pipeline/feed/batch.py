"""One micro-batch of Orders Feed events: re-fetch the orders, upsert them, fetch the buyers Master Data
has but the last sync did not bring yet, recompute those customers for today, and export them.

Idempotent by construction, so a batch that fails anywhere is simply run again: the orders are
re-fetched (the feed says *which* order changed, the order says what it is now: duplicates and
reordering change nothing), the profile rows are recomputed from the raw tables, the export sends only
what icomm has not confirmed, and the inbox watermark (`feed_state`) moves last. Plain Python, no Dagster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.feed.recompute import recompute_customers
from vtex_pipeline.profile.reference import NoReferenceError, load_reference
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.sync.orders import fetch_and_parse
from vtex_pipeline.vtex.errors import RecordError
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.masterdata import find_customer_by_user_id
from vtex_pipeline.vtex.records import customer_row
from vtex_pipeline.warehouse.connection import transaction
from vtex_pipeline.warehouse.raw_loads import as_json, record_rejections, upsert_by_id, upsert_orders
from vtex_pipeline.warehouse.schema import apply_schema
from vtex_pipeline.warehouse.sql_files import read_sql

log = logging.getLogger("vtex_pipeline.feed")
FEED_PARTITION = "feed"  # partition_key of raw rows the feed wrote (the next sync re-keys what it re-reads)


@dataclass
class BatchReport:
    """What one micro-batch did: the asset's metadata."""

    events: int = 0
    duplicates: int = 0
    orders: int = 0
    orders_not_found: int = 0
    customers_fetched: int = 0
    customers_recomputed: int = 0
    rows_read: int = 0
    reference_as_of: str | None = None
    skipped_reason: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    customers: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("customers", "seconds") and v is not None}
        out.update({f"seconds/{k}": v for k, v in self.seconds.items() if isinstance(v, int | float)})
        return out


def ensure_feed_tables(conn: duckdb.DuckDBPyConnection) -> None:
    apply_schema(conn, read_sql("feed/create_feed_tables.sql"))


def processed_upto(conn: duckdb.DuckDBPyConnection) -> int:
    """The inbox storage id up to which events are applied (0: none yet)."""
    ensure_feed_tables(conn)
    row = conn.execute("SELECT max(processed_upto) FROM feed_state").fetchone()
    return int(row[0] or 0)


def set_processed_upto(conn: duckdb.DuckDBPyConnection, upto: int, report: BatchReport, run_id: str) -> None:
    """Move the watermark and log the batch (one transaction): the last step of a batch."""
    with transaction(conn):
        conn.execute("DELETE FROM feed_state")
        conn.execute("INSERT INTO feed_state VALUES (?, now())", [upto])
        conn.execute(
            "INSERT INTO feed_batches VALUES (?, now(), ?, ?, ?, ?, ?, ?, ?)",
            [run_id, upto, report.events, report.orders, report.customers_fetched,
             report.customers_recomputed, report.reference_as_of, report.skipped_reason],
        )  # fmt: skip


def dedupe_events(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """First of each eventId (at-least-once delivery repeats them); returns (events, duplicates)."""
    seen: dict[str, dict[str, Any]] = {}
    for e in events:
        seen.setdefault(str(e.get("eventId")), e)
    return list(seen.values()), len(events) - len(seen)


def _fetch_new_buyers(
    client: VtexClient, conn: duckdb.DuckDBPyConnection, order_ids: list[str], now: datetime
) -> int:
    """CL documents of buyers the raw tables do not know yet (a first purchase by someone who
    registered after the last sync): found by userProfileId = CL.userId, one strongly consistent
    search each, upserted like the sync's. Master Data has no change feed; the sync catches the rest."""
    missing = [
        r[0]
        for r in conn.execute(
            """SELECT DISTINCT trim(o.user_profile_id) FROM raw_orders o
               WHERE list_contains(?, o.order_id) AND nullif(trim(o.user_profile_id), '') IS NOT NULL
                 AND trim(o.user_profile_id) NOT IN (
                     SELECT trim(user_id) FROM raw_customers WHERE user_id IS NOT NULL)""",
            [order_ids],
        ).fetchall()
    ]
    rows = []
    for user_id in missing:
        doc = find_customer_by_user_id(client, user_id)
        if doc is None:
            continue
        try:
            row = customer_row(doc)
        except RecordError as exc:
            log.warning("CL document of userId %s skipped: %s", user_id, exc.reason)
            continue
        row.update(partition_key=FEED_PARTITION, synced_at=now, record=as_json(doc))
        rows.append(row)
    return upsert_by_id(conn, "raw_customers", "customer_id", rows)["written"] if rows else 0


def process_events(
    conn: duckdb.DuckDBPyConnection,
    client: VtexClient,
    cfg: IntegrationConfig,
    settings: ProfileSettings,
    events: list[dict[str, Any]],
    *,
    as_of: date,
) -> BatchReport:
    """Apply `events` (inbox dicts with eventId and orderId) to the raw tables and the profile as of
    `as_of`. Without a daily profile yet, the orders are stored and the profiles wait for it."""
    report = BatchReport()
    unique, report.duplicates = dedupe_events(events)
    report.events = len(unique)
    order_ids = sorted({str(e["orderId"]) for e in unique if e.get("orderId")})
    report.orders = len(order_ids)
    if not order_ids:
        return report
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    orders, items, rejections = fetch_and_parse(client, order_ids, None)
    for row in orders:
        row["synced_at"] = now
    upsert_orders(conn, orders, items)
    not_found = [(oid, reason, rec) for oid, reason, rec in rejections if reason.startswith("not found")]
    report.orders_not_found = len(not_found)
    record_rejections(conn, "orders", rejections, partition_key=FEED_PARTITION)
    report.seconds["orders"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    report.customers_fetched = _fetch_new_buyers(client, conn, order_ids, now)
    report.seconds["customers"] = round(time.perf_counter() - t0, 3)
    try:
        reference = load_reference(conn)
    except NoReferenceError as exc:
        report.skipped_reason = f"{exc}; the orders are stored and the first daily run profiles them"
        return report
    report.reference_as_of = reference.as_of.isoformat()
    if reference.settings:  # the daily run's thresholds and statuses, not today's defaults
        settings = ProfileSettings.model_validate(reference.settings)
    done = recompute_customers(conn, cfg, settings, order_ids, max(as_of, reference.as_of), reference)
    report.customers = done.customers
    report.customers_recomputed = len(done.customers)
    report.rows_read = done.orders_read + done.customers_read
    report.seconds.update({k: v for k, v in done.seconds.items() if isinstance(v, int | float)})
    return report
