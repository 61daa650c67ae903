"""The customer profile: the staging and intermediate model assets (`assets/models.py`) and the mart
`customer_profile`, one daily partition per as-of date D, with checks that would catch real breakage
(`assets/profile_checks.py`).

The mart reads the intermediate tables of D (refusing any that holds another day), fits the predictions
and writes customer_profile, its history and the run log (`profile.compute.finish_profile`).

Backfill policy: a single run for any range. The model assets build the newest day of the range; the
mart computes the older days first, in ascending order, from TEMP copies of the models of each day
(`compute_profile(temp_models=True)`), so every date gets its history rows and `customer_profile`
ends on the newest date. One run per date would pay Dagster's run start-up per day and queue on the
`duckdb` pool for nothing; the work itself is the same.
"""

import warnings
from datetime import date

import dagster as dg

from vtex_pipeline.assets.metadata import model_metadata, table_metadata
from vtex_pipeline.assets.models import build_model_assets
from vtex_pipeline.assets.profile_checks import PROFILE_TABLE, build_profile_checks
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import daily_partitions
from vtex_pipeline.profile.compute import compute_profile, finish_profile
from vtex_pipeline.profile.models import PROFILE_DEPS
from vtex_pipeline.profile.prediction_report import backtest_table, prediction_metadata
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import prepare

warnings.filterwarnings("ignore", category=dg.BetaWarning)


# No `from __future__ import annotations` here: Dagster reads the run-config annotation at definition time.
class ProfileRunConfig(dg.Config):
    """Per-run overrides of ProfileSettings (unset = the integration's settings / the documented
    defaults). The SQL parameters (excluded statuses, F thresholds) are the model assets' config."""

    resolution_warn_threshold: float | None = None
    history_days: int | None = None
    clv_model: str | None = None
    prediction_min_buyers: int | None = None
    prediction_min_repeat_buyers: int | None = None
    backtest_warn_share: float | None = None


def _segment_table(segments: dict[str, int]) -> str:
    total = sum(segments.values()) or 1
    rows = "\n".join(f"| {k} | {v} | {100 * v / total:.1f}% |" for k, v in segments.items())
    return "| rfm_segment | customers | share |\n|---|---:|---:|\n" + rows


def build_profile_assets(
    cfg: IntegrationConfig, settings: ProfileSettings | None = None
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The model assets, the daily `[cfg.name, "customer_profile"]` asset and their checks."""
    base = settings or ProfileSettings()
    duck_key = cfg.resource_key("duckdb")
    asset_key = dg.AssetKey([cfg.name, PROFILE_TABLE])

    @dg.asset(
        key=asset_key,
        deps=[dg.AssetKey([cfg.name, n]) for n in PROFILE_DEPS],
        partitions_def=daily_partitions(cfg.start_date),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=cfg.pool,
        required_resource_keys={duck_key},
        group_name=f"{cfg.name}_profile",
        kinds={"duckdb", "sql"},
        description=(
            "One row per customer as of the partition date D (docs/attributes.md): purchase dates, "
            "windows 30/60/90/180/360/360+ (orders, amounts, products, categories, coupons, RFM), last "
            "purchase, RFM group and segment, predictions (p_alive, expected orders, CLV, churn risk; "
            "docs/predictions.md). Also appends customer_profile_history and clv_model / clv_runs / "
            "clv_backtest for that date."
        ),
    )
    def customer_profile(context: dg.AssetExecutionContext, config: ProfileRunConfig) -> dg.MaterializeResult:
        overrides = {k: v for k, v in config.model_dump().items() if v is not None}
        run_settings = base.model_copy(update=overrides) if overrides else base
        run_settings = ProfileSettings.model_validate(run_settings.model_dump())  # re-validate overrides
        dates = sorted(date.fromisoformat(k) for k in context.partition_keys)
        results = []
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            for d in dates:
                if d < dates[-1]:  # an older day of a range: its models as TEMP copies, history only
                    stats = compute_profile(conn, cfg, run_settings, d, staging=False, temp_models=True)
                else:  # the model assets built this day's tables
                    stats = finish_profile(conn, cfg, run_settings, d)
                results.append(stats)
                context.log.info(
                    f"profile as of {d}: {stats['customers']} customers, {stats['purchases']} purchases, "
                    f"{stats['resolution_share']:.1%} resolved, {stats['seconds']}s"
                )
            latest = results[-1]
            meta = {**table_metadata(conn, PROFILE_TABLE), **model_metadata(conn, PROFILE_TABLE)}
            profile_as_of = conn.execute("SELECT max(as_of) FROM customer_profile_runs").fetchone()[0]
            segments = dict(
                conn.execute(
                    "SELECT coalesce(rfm_segment, '(none)'), count(*) FROM customer_profile "
                    "GROUP BY 1 ORDER BY 2 DESC, 1"
                ).fetchall()
            )
        meta.update(
            {
                "as_of": str(profile_as_of),
                "dates_computed": len(results),
                "purchases": latest["purchases"],
                "buyers": latest["buyers"],
                "resolution_share": round(latest["resolution_share"], 4),
                "resolved_by": dg.MetadataValue.json(latest["resolved_by"]),
                "segment_distribution": dg.MetadataValue.md(_segment_table(segments)),
                "seconds": round(sum(r["seconds"] for r in results), 3),
                "step_seconds": dg.MetadataValue.json(latest["steps"]),
            }
        )
        info = latest["predictions"]
        for key, value in prediction_metadata(info).items():
            meta[key] = dg.MetadataValue.json(value) if isinstance(value, dict) else value
        if info["backtest"].get("weeks"):
            meta["backtest/weeks"] = dg.MetadataValue.md(backtest_table(info["backtest"]["weeks"]))
        context.log.info(
            f"predictions ({info['model']}): {info['status']}"
            + (f" ({info['reason']})" if info["reason"] else "")
            + f", {info['seconds']}s"
        )
        return dg.MaterializeResult(metadata=meta)

    return [*build_model_assets(cfg, base), customer_profile, *build_profile_checks(cfg, base)]
