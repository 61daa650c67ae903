"""Raw VTEX assets, partitioned in 4-hour UTC windows and backfilled in a single run.

Each asset opens the integration's DuckDB file (`pool="duckdb"`: one writer at a time), runs a sync
pass from `vtex_pipeline.sync` over the run's whole time window, and reports what it did.
"""

import warnings
from datetime import UTC, datetime

import dagster as dg

from vtex_pipeline.assets.metadata import report_metadata, table_metadata
from vtex_pipeline.assets.progress import ProgressLog
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import four_hourly_partitions
from vtex_pipeline.sync.catalog import sync_catalog
from vtex_pipeline.sync.customers import sync_customers
from vtex_pipeline.sync.orders import sync_orders
from vtex_pipeline.warehouse.connection import prepare

# single_run() backfills are the documented way to sync a range in one run; the beta notice is noise.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

LEAN_METADATA_ABOVE = 50  # partitions in one run
CATALOG_TABLES = ("raw_products", "raw_skus", "raw_categories", "raw_brands", "raw_sales_channels")


def build_raw_assets(cfg: IntegrationConfig) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """Raw customers, orders (with their items) and catalog assets for one integration."""
    parts = four_hourly_partitions(cfg.start_date)
    duck_key, vtex_key = cfg.resource_key("duckdb"), cfg.resource_key("vtex")
    group = f"{cfg.name}_raw"
    common = dict(
        partitions_def=parts,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="duckdb",
        required_resource_keys={duck_key, vtex_key},
    )

    def key(name: str) -> dg.AssetKey:
        return dg.AssetKey([cfg.name, name])

    def lean(context: dg.AssetExecutionContext) -> bool:
        """Dagster copies a range run's metadata onto every partition: keep it small for long ranges."""
        return len(context.partition_keys) > LEAN_METADATA_ABOVE

    def window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime, str]:
        tw = context.partition_time_window
        keys = context.partition_keys
        label = keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"
        return tw.start.astimezone(UTC), tw.end.astimezone(UTC), label

    def run_sync(
        context: dg.AssetExecutionContext, sync, table: str, also: tuple[str, ...] = (), **kw
    ) -> dict:
        """Run one sync pass over the run's time window; return its materialization metadata."""
        start, end, label = window(context)
        vtex = getattr(context.resources, vtex_key)
        with vtex.make_client() as client, getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            report = sync(
                client,
                conn,
                cfg,
                start=start,
                end=end,
                now=datetime.now(UTC),
                run_id=context.run_id,
                progress=ProgressLog(context.log.info),
                **kw,
            )
            report.api = client.stats.snapshot()
            meta = {
                **table_metadata(conn, table, lean=lean(context)),
                **report_metadata(report),
                "window": label,
            }
            for other in also:
                meta[f"{other}_rows"] = conn.execute(f"SELECT count(*) FROM {other}").fetchone()[0]
        return meta

    @dg.asset(
        key=key("raw_customers"),
        group_name=group,
        kinds={"duckdb", "vtex"},
        description="Master Data CL documents created or updated in the window (everything on the first sync).",
        **common,
    )
    def raw_customers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        meta = run_sync(context, sync_customers, "raw_customers", partition_key=context.partition_keys[-1])
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(
        key=key("raw_orders"),
        group_name=group,
        kinds={"duckdb", "vtex"},
        description=(
            "OMS orders by creation window: full detail, latest version, one row per order "
            "(table raw_orders), and their items (table raw_order_items). Re-lists a look-back for status changes."
        ),
        **common,
    )
    def raw_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata=run_sync(context, sync_orders, "raw_orders", also=("raw_order_items",))
        )

    # The catalog is not a time series: one materialization per run, not one per 4-hour window
    # (a two-year first sync would otherwise record ~4,400 identical catalog materializations).
    @dg.asset(
        key=key("raw_catalog"),
        group_name=group,
        kinds={"duckdb", "vtex"},
        deps=[key("raw_orders")],
        pool="duckdb",
        required_resource_keys={duck_key, vtex_key},
        description=(
            "VTEX catalog: the products and SKUs that orders refer to, fetched once and refreshed when stale "
            "(tables raw_products, raw_skus), and the category tree, brands and sales channels, refreshed whole "
            "(raw_categories, raw_brands, raw_sales_channels)."
        ),
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

    @dg.asset_check(
        asset=key("raw_orders"),
        name="items_belong_to_orders",
        pool="duckdb",
        required_resource_keys={duck_key},
        blocking=True,
        description="Every item row has its order, and every order's item_count matches its items.",
    )
    def items_belong_to_orders(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            orphans = conn.execute(
                "SELECT count(*) FROM raw_order_items i ANTI JOIN raw_orders o USING (order_id)"
            ).fetchone()[0]
            mismatched = conn.execute(
                """SELECT count(*) FROM raw_orders o LEFT JOIN (
                       SELECT order_id, count(*) n FROM raw_order_items GROUP BY 1) i USING (order_id)
                   WHERE coalesce(i.n, 0) <> coalesce(o.item_count, 0)"""
            ).fetchone()[0]
        return dg.AssetCheckResult(
            passed=orphans == 0 and mismatched == 0,
            metadata={"orphan_items": int(orphans), "orders_with_item_count_mismatch": int(mismatched)},
        )

    @dg.asset_check(
        asset=key("raw_orders"),
        name="few_rejected_orders",
        pool="duckdb",
        required_resource_keys={duck_key},
        description="Warns when orders were set aside as malformed or unfetchable (see raw_rejected_records).",
    )
    def few_rejected_orders(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            rejected = conn.execute(
                "SELECT count(*) FROM raw_rejected_records WHERE source = 'orders'"
            ).fetchone()[0]
            total = conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0]
        share = rejected / max(total + rejected, 1)
        return dg.AssetCheckResult(
            passed=share <= 0.001,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rejected_orders": int(rejected),
                "stored_orders": int(total),
                "share": round(share, 6),
            },
        )

    return [raw_customers, raw_orders, raw_catalog, items_belong_to_orders, few_rejected_orders]
