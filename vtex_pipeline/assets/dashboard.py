"""The store dashboard asset: KPI tables in DuckDB (`dash_*`) and one self-contained HTML page next to
the DuckDB file, refreshed with the 4-hourly raw sync.

Unpartitioned: it always describes "now" (today in the store time zone), whatever window the sync just
loaded, so one materialization per sync is all there is. It reads the profile when there is one and
says "no profile yet" otherwise, so it never waits for (or fails without) the daily profile.
"""

import warnings

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.dashboard.kpis import DASH_TABLES, STAGING, compute_kpis, dashboard_path
from vtex_pipeline.dashboard.render import kpi_markdown, render_dashboard, summary_figures
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import prepare

warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_dashboard_assets(
    cfg: IntegrationConfig, settings: ProfileSettings | None = None
) -> list[dg.AssetsDefinition]:
    """The `[cfg.name, "dashboard"]` asset of one integration."""
    duck_key = cfg.resource_key("duckdb")
    profile_settings = settings or ProfileSettings()

    @dg.asset(
        key=dg.AssetKey([cfg.name, "dashboard"]),
        deps=[
            dg.AssetKey([cfg.name, n])
            for n in ("raw_orders", *STAGING, "customer_profile")  # staging: built once, shared
        ],
        pool=cfg.pool,
        required_resource_keys={duck_key},
        group_name=f"{cfg.name}_dashboard",
        kinds={"duckdb", "sql", "html"},
        description=(
            "Store KPIs as of today (store time zone): sales per day and sales channel, top products, "
            "categories, brands and coupons of the last 30 days, RFM segment sizes and transitions, data "
            "freshness per source. Tables dash_* in DuckDB and a self-contained HTML page next to the file."
        ),
    )
    def dashboard(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        path = dashboard_path(cfg)
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            stats = compute_kpis(conn, cfg, settings=profile_settings)
            render_dashboard(conn, path)
            tables = kpi_markdown(conn)
            headline = summary_figures(conn)
        if stats["missing_tables"]:
            context.log.info(f"not there yet (panels say so): {', '.join(stats['missing_tables'])}")
        context.log.info(f"dashboard as of {stats['as_of']} written to {path} in {stats['seconds']}s")
        meta: dict = {
            "dashboard_path": dg.MetadataValue.path(str(path.resolve())),
            "as_of": str(stats["as_of"]),
            "previous_profile_as_of": str(stats["previous_profile_as_of"] or ""),
            "seconds": stats["seconds"],
            "dagster/row_count": sum(stats["row_counts"].values()),
        }
        meta.update({f"rows/{t}": stats["row_counts"][t] for t in DASH_TABLES})
        meta.update({f"last_30d/{k}": v for k, v in headline.items() if v is not None})
        meta.update({k: dg.MetadataValue.md(v) for k, v in tables.items()})
        return dg.MaterializeResult(metadata=meta)

    return [dashboard]
