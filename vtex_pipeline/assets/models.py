"""One Dagster asset per SQL model of `profile/models.py` (`MODELS`), named after its table, with its
checks. The factory is the whole mechanism: the asset runs `sql/<layer>/<name>.sql` into the table
`<name>` and reports its row count, column schema (descriptions from docs/attributes.md) and as_of.

Staging assets are unpartitioned (built once per sync, shared by the profile, the dashboard and the
checks; the daily job keeps a staging table that is current, see `build_staging`); intermediate
assets are partitioned by the as-of day D like `customer_profile`. A run over a range of days builds
the newest day into the tables: `customer_profile` rebuilds the older days' history from TEMP copies
(see `assets/profile.py`).
"""

import warnings
from datetime import date
from functools import partial

import dagster as dg

from vtex_pipeline.assets.checks import check, none_counted, scalar
from vtex_pipeline.assets.metadata import model_metadata
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import daily_partitions
from vtex_pipeline.profile.compute import WINDOWS, build_model, sql_parameters
from vtex_pipeline.profile.models import MODELS, Model, build_staging
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import prepare

warnings.filterwarnings("ignore", category=dg.BetaWarning)


# No `from __future__ import annotations` here: Dagster reads the run-config annotation at definition time.
class ModelRunConfig(dg.Config):
    """Per-run overrides of the SQL parameters (unset = the integration's ProfileSettings)."""

    excluded_statuses: list[str] | None = None
    f_thresholds: list[int] | None = None


def group_name(cfg: IntegrationConfig, model: Model) -> str:
    return f"{cfg.name}_staging" if not model.per_day else f"{cfg.name}_profile"


def _model_asset(cfg: IntegrationConfig, base: ProfileSettings, model: Model) -> dg.AssetsDefinition:
    duck_key = cfg.resource_key("duckdb")

    @dg.asset(
        key=dg.AssetKey([cfg.name, model.name]),
        deps=[dg.AssetKey([cfg.name, d]) for d in model.deps],
        partitions_def=daily_partitions(cfg.start_date) if model.per_day else None,
        backfill_policy=dg.BackfillPolicy.single_run() if model.per_day else None,
        pool=cfg.pool,
        required_resource_keys={duck_key},
        group_name=group_name(cfg, model),
        kinds={"duckdb", "sql", "view" if model.view else "table"},
        description=f"{model.description} (`sql/{model.path}`)",
        metadata={"sql_file": f"vtex_pipeline/sql/{model.path}"},
    )
    def _asset(context: dg.AssetExecutionContext, config: ModelRunConfig) -> dg.MaterializeResult:
        overrides = {k: v for k, v in config.model_dump().items() if v is not None}
        settings = ProfileSettings.model_validate({**base.model_dump(), **overrides}) if overrides else base
        # a range run builds its newest day: the tables hold one day (customer_profile: older days)
        as_of = max(date.fromisoformat(k) for k in context.partition_keys) if model.per_day else None
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            params = sql_parameters(cfg, settings, as_of)
            if model.per_day:
                build_model(conn, model.name, settings, params)
                rebuilt = None
            elif not (rebuilt := build_staging(conn, model.name, params)):
                context.log.info(f"{model.name} is current (same SQL, parameters and raw tables): kept")
            meta = model_metadata(conn, model.name, lean=model.view)
        if rebuilt is not None:
            meta["rebuilt"] = rebuilt
        if as_of is not None:
            meta["as_of"] = str(as_of)
        return dg.MaterializeResult(metadata=meta)

    return _asset


def _checks(cfg: IntegrationConfig) -> list[dg.AssetChecksDefinition]:
    """Checks attached to the model they check; each reads only that model's table (and its inputs) and
    blocks: a broken model must not reach the profile. A check's docstring is its description."""
    on_model = partial(check, cfg, blocking=True)
    nested = WINDOWS[:-1]

    @on_model("int_windows", "windows_never_shrink")
    def windows_never_shrink(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Purchases and amounts never shrink as the window widens (30 <= 60 <= ... <= 360)."""
        conds = []
        for a, b in zip(nested, nested[1:], strict=False):
            conds += [f"orders_{a} > orders_{b}", f"cents_{a} > cents_{b}"]
        sql = f"SELECT count(*) FROM int_windows WHERE {' OR '.join(conds)}"
        return none_counted(cfg, context, sql, "customers_with_shrinking_windows")

    @on_model("int_lists", "lists_never_shrink")
    def lists_never_shrink(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Product, category and coupon lists never shrink as the window widens (30 <= ... <= 360)."""
        conds = []
        for kind in ("products", "categories", "coupons"):
            lengths = [f"n_{kind}_{w}" for w in nested[:-1]] + [f"len({kind}_360d)"]
            conds += [f"{a} > {b}" for a, b in zip(lengths, lengths[1:], strict=False)]
        sql = f"SELECT count(*) FROM int_lists WHERE {' OR '.join(conds)}"
        return none_counted(cfg, context, sql, "customers_with_shrinking_lists")

    @on_model("int_rfm", "rfm_codes_well_formed")
    def rfm_codes_well_formed(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Every RFM code is three digits 1-5, and NULL exactly when the window has no purchase."""
        conds = " OR ".join(
            f"((r.rfm_{w} IS NULL) <> (w.orders_{w} = 0) "
            f"OR NOT coalesce(regexp_full_match(r.rfm_{w}, '[1-5]{{3}}'), true))"
            for w in WINDOWS
        )
        sql = f"SELECT count(*) FROM int_rfm r JOIN int_windows w USING (ckey) WHERE {conds}"
        return none_counted(cfg, context, sql, "customers_with_bad_rfm")

    @on_model("int_rfm", "segments_add_up")
    def segments_add_up(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Every buyer has a group and segment from the seed; the segment counts add up to the buyers."""
        buyers, segmented, unnamed = scalar(
            cfg,
            context,
            """SELECT count(*),
                      (SELECT sum(n) FROM (SELECT count(*) AS n FROM int_rfm
                                           WHERE rfm_segment IS NOT NULL GROUP BY rfm_segment)),
                      count(*) FILTER (WHERE rfm_segment IS NULL OR rfm_group IS NULL)
               FROM int_rfm""",
        )
        return dg.AssetCheckResult(
            passed=unnamed == 0 and (segmented or 0) == buyers,
            metadata={
                "buyers": buyers,
                "buyers_in_segments": int(segmented or 0),
                "without_segment": unnamed,
            },
        )

    return [windows_never_shrink, lists_never_shrink, rfm_codes_well_formed, segments_add_up]


def build_model_assets(
    cfg: IntegrationConfig, settings: ProfileSettings | None = None
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The staging and intermediate assets of one integration, in `MODELS` order, and their checks."""
    base = settings or ProfileSettings()
    return [*(_model_asset(cfg, base, m) for m in MODELS), *_checks(cfg)]
