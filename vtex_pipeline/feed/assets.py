"""The feed path's assets: `<name>/orders_feed_events` (observed by the sensor: the inbox) and
`<name>/feed_contacts`, the micro-batch that applies them, with its lag check."""

import statistics
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from vtex_pipeline.assets.export import failed_batches_message, send_contacts
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.feed.batch import BatchReport, process_events, processed_upto, set_processed_upto
from vtex_pipeline.feed.inbox import events_asset_key, latest_storage_id, read_inbox
from vtex_pipeline.feed.settings import lag_warn_seconds
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.vtex.dates import parse_vtex_datetime
from vtex_pipeline.warehouse.connection import prepare

PROCESSED_UPTO = "feed/processed_upto"  # materialization metadata the sensor reads
EXPORT_TABLE = "feed_export"


def feed_asset_key(cfg: IntegrationConfig) -> dg.AssetKey:
    return dg.AssetKey([cfg.name, "feed_contacts"])


def lag_check_name() -> str:
    return "feed_lag_within_bound"


def _lags(events: list[dict], now: datetime) -> list[float]:
    """Seconds from each event's status change at VTEX to now (the profile row is written)."""
    out = []
    for e in events:
        when = e.get("currentChange") or e.get("receivedAt")
        if when:
            out.append((now - parse_vtex_datetime(when)).total_seconds())
    return out


def build_feed_assets(cfg: IntegrationConfig) -> list:
    duck_key, vtex_key, icomm_key = (cfg.resource_key(k) for k in ("duckdb", "vtex", "icomm"))
    keys = {duck_key, vtex_key} | ({icomm_key} if cfg.icomm is not None else set())
    group = f"{cfg.name}_feed"
    events = dg.AssetSpec(
        events_asset_key(cfg),
        group_name=group,
        kinds={"vtex"},
        description=(
            f"Orders Feed v3 events of this account, as the sensor `{cfg.name}_orders_feed` read them: one "
            "observation per read, stored in the Dagster instance before their handles are committed to "
            "VTEX (metadata: the events, the queue's depth and oldest age)."
        ),
    )
    bound = lag_warn_seconds()

    @dg.asset(
        key=feed_asset_key(cfg),
        deps=[events.key, dg.AssetKey([cfg.name, "customer_profile"])],
        group_name=group,
        kinds={"duckdb", "icomm"} if cfg.icomm is not None else {"duckdb"},
        pool=cfg.pool,
        required_resource_keys=keys,
        check_specs=[
            dg.AssetCheckSpec(
                lag_check_name(),
                asset=feed_asset_key(cfg),
                description=f"Every event of the batch reached the profile within {bound} s of its change.",
            )
        ],
        description=(
            "Contacts updated from Orders Feed events between daily runs: the changed orders re-fetched into "
            "raw_orders, the profiles of their customers recomputed for today in customer_profile (scored "
            "with the last daily run's RFM boundaries and prediction parameters), and those contacts sent "
            "to icomm. The daily run stays the full recompute and the source of truth."
        ),
    )
    def feed_contacts(context: dg.AssetExecutionContext):
        instance = context.instance
        vtex = getattr(context.resources, vtex_key).make_client()
        today = datetime.now(ZoneInfo(cfg.timezone)).date()
        with vtex, getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            after = processed_upto(conn)
            latest = latest_storage_id(instance, cfg) or 0
            if after > latest:  # a new Dagster instance: its inbox starts again from storage id 1
                context.log.warning(
                    f"the DuckDB file applied events up to storage id {after}, past this instance's inbox "
                    f"({latest}): a new instance; applying its inbox from the start"
                )
                after = 0
            inbox = read_inbox(instance, cfg, after)
            report = BatchReport()
            if inbox.events:
                report = process_events(conn, vtex, cfg, ProfileSettings(), inbox.events, as_of=today)
            export_meta: dict = {}
            if cfg.icomm is not None and report.customers:
                conn.execute(
                    f"""CREATE OR REPLACE TEMP TABLE {EXPORT_TABLE} AS
                        SELECT * FROM main.customer_profile WHERE lower(trim(CAST(email AS VARCHAR))) IN (
                            SELECT lower(trim(CAST(email AS VARCHAR))) FROM main.customer_profile
                            WHERE list_contains(?, customer_id))""",
                    [report.customers],
                )
                try:
                    export = send_contacts(context, cfg.icomm, icomm_key, conn, table=EXPORT_TABLE)
                finally:
                    conn.execute(f"DROP TABLE IF EXISTS temp.{EXPORT_TABLE}")
                if export.failed_batches:
                    raise dg.Failure(failed_batches_message(export), metadata=export.metadata())
                export_meta = {
                    f"icomm/{k}": v
                    for k, v in export.metadata().items()
                    if k in ("planned", "sent", "failed", "unchanged")
                }
            set_processed_upto(conn, inbox.upto, report, context.run_id)
        lags = _lags(inbox.events, datetime.now(UTC))
        meta = {
            **report.metadata(),
            **export_meta,
            PROCESSED_UPTO: inbox.upto,
            "observations": inbox.observations,
        }
        if lags:
            meta.update(
                {
                    "lag/p50_seconds": round(statistics.median(lags), 1),
                    "lag/max_seconds": round(max(lags), 1),
                }
            )
        if report.customers:
            context.log.info(
                f"{report.events} events, {report.orders} orders: {report.customers_recomputed} customers "
                f"recomputed as of {today} (reference {report.reference_as_of})"
            )
        elif report.skipped_reason:
            context.log.warning(report.skipped_reason)
        worst = max(lags, default=0.0)
        yield dg.MaterializeResult(metadata=meta)
        yield dg.AssetCheckResult(
            check_name=lag_check_name(),
            passed=worst <= bound,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"max_lag_seconds": round(worst, 1), "bound_seconds": bound, "events": len(lags)},
        )

    return [dg.AssetsDefinition(specs=[events]), feed_contacts]
