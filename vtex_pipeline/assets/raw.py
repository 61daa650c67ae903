"""Raw VTEX assets, partitioned by UTC day, refreshed every 4 hours and backfilled in a single run.

Each asset opens the integration's DuckDB file (`pool=cfg.pool`, one per file: one writer at a time), runs a sync
pass from `vtex_pipeline.sync` over the run's time window, and reports what it did, including
`synced_until`: a day partition refreshed at 08:10 holds that day's data up to 08:10.

Why days and not the 4-hour windows the sync works in: Dagster records every partition of a range run
as its own event (~15 ms each on SQLite, whatever the asset does), so a two-year first sync in 4-hour
partitions spent 10 minutes in bookkeeping for 20 s of API calls. Days cut that six-fold; the 4-hour
windows live on inside the sync (`synced_partitions`, the watermarks), where they cost nothing.
"""

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from vtex_pipeline.assets.metadata import report_metadata, table_metadata
from vtex_pipeline.assets.progress import ProgressLog
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import WINDOW, daily_partitions, partition_key_for, window_start
from vtex_pipeline.sync.catalog import sync_catalog
from vtex_pipeline.sync.customers import sync_customers
from vtex_pipeline.sync.orders import sync_orders
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline.warehouse.raw_loads import get_watermark

# single_run() backfills are the documented way to sync a range in one run; the beta notice is noise.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

LEAN_METADATA_ABOVE = 14  # day partitions in one run
# Run tag set by the schedule and `vtex-pipeline run`: start from the last synced 4-hour window instead
# of the start of the run's first day (a refresh), so a day refreshed six times is fetched once.
INCREMENTAL_TAG = "vtex_pipeline/incremental"
# Run tag set by `vtex-pipeline run --as-of D`: sync no further than this instant (the end of the 4-hour
# window holding the end of D), so the files hold D's state and nothing after it.
SYNC_UNTIL_TAG = "vtex_pipeline/sync_until"
LEAN_REPORT_KEYS = ("sync/orders_written", "sync/rejected", "sync/seconds", "api/requests")
CATALOG_TABLES = ("raw_products", "raw_skus", "raw_categories", "raw_brands", "raw_sales_channels")


def build_raw_assets(cfg: IntegrationConfig) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """Raw customers, orders (with their items) and catalog assets for one integration."""
    parts = daily_partitions(cfg.start_date)
    duck_key, vtex_key = cfg.resource_key("duckdb"), cfg.resource_key("vtex")
    group = f"{cfg.name}_raw"

    def key(name: str) -> dg.AssetKey:
        return dg.AssetKey([cfg.name, name])

    def raw_asset(name: str, description: str, **kw: Any) -> Any:
        """`dg.asset` for one raw asset: the group, kinds, pool (one writer per file) and resources all share."""
        return dg.asset(
            key=key(name),
            group_name=group,
            kinds={"duckdb", "vtex"},
            pool=cfg.pool,
            required_resource_keys={duck_key, vtex_key},
            description=description,
            **kw,
        )

    def lean(context: dg.AssetExecutionContext) -> bool:
        """Dagster copies a range run's metadata onto every partition: keep it small for long ranges."""
        return (
            context.assets_def.partitions_def is not None
            and len(context.partition_keys) > LEAN_METADATA_ABOVE
        )

    def run_days(context: dg.AssetExecutionContext, now: datetime) -> tuple[datetime, datetime, str]:
        """The run's days as [start, end), from the asset's partitions or (customers, catalog: not
        partitioned) from the run's partition tags; a run without any covers the last window."""
        if context.assets_def.partitions_def is not None:
            tw, keys = context.partition_time_window, context.partition_keys
            label = keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"
            return tw.start.astimezone(UTC), tw.end.astimezone(UTC), label
        tags = context.run.tags
        first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
        last = tags.get("dagster/asset_partition_range_end") or first
        if not first:
            return window_start(now), window_start(now) + WINDOW, "latest"
        start = datetime.fromisoformat(first).replace(tzinfo=UTC)
        end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
        return start, end, first if first == last else f"{first}...{last}"

    def window(
        context: dg.AssetExecutionContext, conn, source: str, now: datetime
    ) -> tuple[datetime, datetime, str]:
        """[start, end) to sync: the run's days, cut at the end of the 4-hour window in progress; a
        refresh (INCREMENTAL_TAG) starts at the window of the source's watermark when that is later."""
        start, end, label = run_days(context, now)
        end = min(end, window_start(now) + WINDOW)
        if context.run.tags.get(SYNC_UNTIL_TAG):
            end = min(end, datetime.fromisoformat(context.run.tags[SYNC_UNTIL_TAG]))
        if context.run.tags.get(INCREMENTAL_TAG) == "true":
            mark = get_watermark(conn, source)
            if mark is not None:
                last = window_start(max(end - WINDOW, start))
                start = min(max(start, window_start(mark - timedelta(microseconds=1))), last)
        return start, max(end, start), label

    def run_sync(
        context: dg.AssetExecutionContext, sync, source: str, table: str, also: tuple[str, ...] = (), **kw
    ) -> dict:
        """Run one sync pass over the run's time window; return its materialization metadata."""
        now = datetime.now(UTC)
        vtex = getattr(context.resources, vtex_key)
        with vtex.make_client() as client, getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            start, end, label = window(context, conn, source, now)
            context.log.info(
                f"syncing {source} created or changed in [{start.isoformat()}, {end.isoformat()}) "
                f"into {cfg.duckdb_path}"
            )
            if source == "customers":  # the 4-hour window of the sync's end, kept on each row
                kw["partition_key"] = partition_key_for(min(end, now) - timedelta(microseconds=1))
            report = sync(
                client,
                conn,
                cfg,
                start=start,
                end=end,
                now=now,
                run_id=context.run_id,
                progress=ProgressLog(context.log.info),
                **kw,
            )
            report.api = client.stats.snapshot()
            # Orders: how far this run's days go. Customers (not partitioned): the watermark, which never
            # moves back, so a backfill of old days does not make today look unsynced to the sensor.
            synced_until = min(end, now) if source == "orders" else get_watermark(conn, source)
            report_meta = report_metadata(report)
            if lean(context):  # copied onto every day of the range: the log line keeps the full report
                context.log.info(f"{source} sync report: {report_meta}")
                report_meta = {k: v for k, v in report_meta.items() if k in LEAN_REPORT_KEYS}
            meta = {
                **table_metadata(conn, table, lean=lean(context)),
                **report_meta,
                "window": label,
                "synced_from": start.isoformat(),
                "synced_until": synced_until.isoformat(),
                "duckdb_file": cfg.duckdb_path,
            }
            for other in also:
                meta[f"{other}_rows"] = conn.execute(f"SELECT count(*) FROM {other}").fetchone()[0]
        return meta

    # Customers are a current-state table, not a time series: Master Data is synced from the watermark
    # (everything the first time), so one materialization per run says how far (`synced_until`); the
    # days synced show on raw_orders. Partitioned by day it would double the run's bookkeeping.
    @raw_asset(
        "raw_customers",
        "Master Data CL documents created or updated since the last sync (everything on the first); "
        "refreshed every 4 hours with the orders, metadata synced_until says how far.",
    )
    def raw_customers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        meta = run_sync(context, sync_customers, "customers", "raw_customers")
        return dg.MaterializeResult(metadata=meta)

    @raw_asset(
        "raw_orders",
        "OMS orders by creation day (UTC), refreshed every 4 hours: full detail, latest version, one row per order "
        "(table raw_orders), and their items (table raw_order_items). Re-lists a look-back for status changes.",
        partitions_def=parts,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def raw_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata=run_sync(context, sync_orders, "orders", "raw_orders", also=("raw_order_items",))
        )

    # The catalog is not a time series: one materialization per run, not one per 4-hour window
    # (a two-year first sync would otherwise record ~4,400 identical catalog materializations).
    @raw_asset(
        "raw_catalog",
        "VTEX catalog: the products and SKUs that orders refer to, fetched once and refreshed when stale "
        "(tables raw_products, raw_skus), and the category tree, brands and sales channels, refreshed whole "
        "(raw_categories, raw_brands, raw_sales_channels).",
        deps=[key("raw_orders")],
    )
    def raw_catalog(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        tags = context.run.tags
        label = tags.get("dagster/partition") or "...".join(
            t
            for t in (
                tags.get("dagster/asset_partition_range_start"),
                tags.get("dagster/asset_partition_range_end"),
            )
            if t
        )
        vtex = getattr(context.resources, vtex_key)
        with vtex.make_client() as client, getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            report = sync_catalog(client, conn, cfg, now=datetime.now(UTC))
            report.api = client.stats.snapshot()
            meta = {**table_metadata(conn, "raw_products"), **report_metadata(report), "window": label}
            for t in CATALOG_TABLES[1:]:
                meta[f"{t}_rows"] = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        return dg.MaterializeResult(metadata=meta)

    def orders_check(name: str, description: str, **kw: Any) -> Any:
        """An asset check on raw_orders that reads the DuckDB file (the checks below differ only in SQL)."""
        return dg.asset_check(
            asset=key("raw_orders"),
            name=name,
            pool=cfg.pool,
            required_resource_keys={duck_key},
            description=description,
            **kw,
        )

    def counts(context: dg.AssetCheckExecutionContext, *queries: str) -> list[int]:
        """The first column of each `SELECT count(*) ...` query, on the prepared DuckDB file."""
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            return [int(conn.execute(sql).fetchone()[0]) for sql in queries]

    @orders_check(
        "items_belong_to_orders",
        "Every item row has its order, and every order's item_count matches its items.",
        blocking=True,
    )
    def items_belong_to_orders(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        orphans, mismatched = counts(
            context,
            "SELECT count(*) FROM raw_order_items i ANTI JOIN raw_orders o USING (order_id)",
            """SELECT count(*) FROM raw_orders o LEFT JOIN (
                   SELECT order_id, count(*) n FROM raw_order_items GROUP BY 1) i USING (order_id)
               WHERE coalesce(i.n, 0) <> coalesce(o.item_count, 0)""",
        )
        return dg.AssetCheckResult(
            passed=orphans == 0 and mismatched == 0,
            metadata={"orphan_items": orphans, "orders_with_item_count_mismatch": mismatched},
        )

    @orders_check(
        "few_rejected_orders",
        "Warns when orders were set aside as malformed or unfetchable (see raw_rejected_records).",
    )
    def few_rejected_orders(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        rejected, total = counts(
            context,
            "SELECT count(*) FROM raw_rejected_records WHERE source = 'orders'",
            "SELECT count(*) FROM raw_orders",
        )
        share = rejected / max(total + rejected, 1)
        return dg.AssetCheckResult(
            passed=share <= 0.001,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected_orders": rejected, "stored_orders": total, "share": round(share, 6)},
        )

    return [raw_customers, raw_orders, raw_catalog, items_belong_to_orders, few_rejected_orders]
