"""The customer profile: the staging and intermediate model assets (`assets/models.py`) and the mart
`customer_profile`, one daily partition per as-of date D, with checks that would catch real breakage.

The mart reads the intermediate tables of D (refusing any that holds another day), fits the predictions
and writes customer_profile, its history and the run log (`profile.compute.finish_profile`).

Backfill policy: a single run for any range. The model assets build the newest day of the range; the
mart computes the older days first, in ascending order, from TEMP copies of the models of each day
(`compute_profile(temp_models=True)`), so every date gets its history rows and `customer_profile`
ends on the newest date. One run per date would pay Dagster's run start-up per day and queue on the
`duckdb` pool for nothing; the work itself is the same.
"""

import json
import warnings
from datetime import date
from typing import Any

import dagster as dg
import duckdb

from vtex_pipeline.assets.metadata import model_metadata, table_metadata
from vtex_pipeline.assets.models import build_model_assets
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.partitions import daily_partitions
from vtex_pipeline.profile.compute import compute_profile, finish_profile
from vtex_pipeline.profile.models import PROFILE_DEPS
from vtex_pipeline.profile.prediction_report import backtest_table, prediction_metadata
from vtex_pipeline.profile.settings import ProfileSettings
from vtex_pipeline.warehouse.connection import prepare

warnings.filterwarnings("ignore", category=dg.BetaWarning)

PROFILE_TABLE = "customer_profile"


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


def _latest_run(conn: duckdb.DuckDBPyConnection) -> tuple[date, dict[str, Any]] | None:
    """As-of date of customer_profile and the parameters it was computed with."""
    row = conn.execute(
        """SELECT r.as_of, r.parameters FROM customer_profile_runs r
           WHERE r.as_of = (SELECT max(as_of) FROM customer_profile_runs)"""
    ).fetchone()
    return (row[0], json.loads(row[1])) if row else None


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

    def check(name: str, description: str, *, blocking: bool = False):
        return dg.asset_check(
            asset=asset_key,
            name=name,
            pool=cfg.pool,
            required_resource_keys={duck_key},
            blocking=blocking,
            description=description,
        )

    def scalar(context: dg.AssetCheckExecutionContext, sql: str, params: list | None = None) -> Any:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            return conn.execute(sql, params or []).fetchone()

    @check(
        "one_row_per_customer",
        "customer_id is unique and every CL document created by D (store time zone) has its row.",
        blocking=True,
    )
    def one_row_per_customer(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        # rows the Orders Feed recomputed since (as_of after D) may add customers created after D
        rows, distinct, expected, feed_new = scalar(
            context,
            """WITH d AS (SELECT max(as_of) AS d FROM customer_profile_runs)
               SELECT count(*), count(DISTINCT customer_id),
                      (SELECT count(*) FROM raw_customers, d WHERE timezone(?, created_in)::DATE <= d.d),
                      (SELECT count(*) FROM customer_profile p JOIN raw_customers r USING (customer_id), d
                       WHERE timezone(?, r.created_in)::DATE > d.d)
               FROM customer_profile""",
            [cfg.timezone, cfg.timezone],
        )
        return dg.AssetCheckResult(
            passed=rows == distinct == expected + feed_new,
            metadata={"rows": rows, "distinct_customers": distinct, "customers_created_by_d": expected,
                      "created_after_d_by_the_feed": feed_new},
        )  # fmt: skip

    @check("no_alias_emails", "No profile e-mail is a masked ct.vtex.com.br alias.", blocking=True)
    def no_alias_emails(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        (n,) = scalar(
            context, "SELECT count(*) FROM customer_profile WHERE suffix(lower(email), 'ct.vtex.com.br')"
        )
        return dg.AssetCheckResult(passed=n == 0, metadata={"alias_emails": n})

    @check(
        "lifetime_purchases_add_up",
        "orders_360d + orders_360plus equals each customer's purchases up to D, recounted from staging.",
        blocking=True,
    )
    def lifetime_purchases_add_up(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            latest = _latest_run(conn)
            if latest is None:
                return dg.AssetCheckResult(passed=False, metadata={"error": "no computed profile"})
            as_of = latest[0]
            mismatched, total = conn.execute(
                """WITH counted AS (
                       SELECT c.customer_id, count(p.okey) AS purchases
                       FROM stg_customers c
                       LEFT JOIN stg_order_customer oc ON oc.ckey = c.ckey
                       LEFT JOIN stg_purchases p ON p.okey = oc.okey AND p.purchase_date <= $as_of
                       WHERE c.created_date <= $as_of GROUP BY 1)
                   -- rows the Orders Feed recomputed since D count purchases after D: left out
                   , feed AS (SELECT customer_id FROM customer_profile WHERE as_of > $as_of)
                   SELECT count(*) FILTER (WHERE p.customer_id IS NULL OR k.customer_id IS NULL
                                           OR p.orders_360d + p.orders_360plus <> k.purchases),
                          sum(k.purchases)
                   FROM (SELECT * FROM customer_profile WHERE as_of = $as_of) p
                   FULL JOIN (SELECT * FROM counted WHERE customer_id NOT IN (SELECT customer_id FROM feed)) k
                     ON k.customer_id = p.customer_id""",
                {"as_of": as_of},
            ).fetchone()
        return dg.AssetCheckResult(
            passed=mismatched == 0,
            metadata={"customers_mismatched": int(mismatched), "lifetime_purchases": int(total or 0)},
        )

    @check(
        "purchases_resolved_to_customers",
        "Warns when the share of purchases up to D resolved to a CL document falls below the threshold.",
    )
    def purchases_resolved(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        row = scalar(
            context,
            """SELECT purchases, resolved_purchases, resolved_by_user_profile_id, resolved_by_email,
                      resolved_by_document, parameters
               FROM customer_profile_runs WHERE as_of = (SELECT max(as_of) FROM customer_profile_runs)""",
        )
        if row is None:
            return dg.AssetCheckResult(passed=False, metadata={"error": "no computed profile"})
        purchases, resolved, by_user, by_email, by_doc, params = row
        threshold = (
            json.loads(params)
            .get("settings", {})
            .get("resolution_warn_threshold", base.resolution_warn_threshold)
        )
        share = resolved / purchases if purchases else 1.0
        return dg.AssetCheckResult(
            passed=share >= threshold,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "share": round(share, 4),
                "threshold": threshold,
                "purchases": purchases,
                "resolved": resolved,
                "by_user_profile_id": by_user,
                "by_email": by_email,
                "by_document": by_doc,
            },
        )

    @check(
        "predictions_fit",
        "The prediction models fitted (interior maximum, converged). Passes with 'skipped' when the store "
        "is below the minimums; fails (ERROR, not blocking: the rest of the profile is sound and is exported, "
        "prediction fields empty) when a fit was attempted and failed, with the reason.",
    )
    def predictions_fit(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            row = conn.execute(
                """SELECT as_of, model, status, reason, buyers, repeat_buyers FROM clv_runs
                   WHERE as_of = (SELECT max(as_of) FROM customer_profile_runs)"""
            ).fetchone()
            fits = (
                conn.execute(
                    "SELECT model, params, log_likelihood, customers FROM clv_model WHERE as_of = ? ORDER BY 1",
                    [row[0]],
                ).fetchall()
                if row
                else []
            )
        if row is None:
            return dg.AssetCheckResult(passed=False, metadata={"error": "no predictions recorded"})
        as_of, model, status, reason, buyers, repeat = row
        meta: dict[str, Any] = {
            "as_of": str(as_of),
            "model": model,
            "buyers": buyers,
            "repeat_buyers": repeat,
        }
        if status == "skipped":
            meta["skipped"] = reason
        elif reason:
            meta["reason"] = reason
        for name, params, ll, customers in fits:
            meta[f"{name}_params"] = dg.MetadataValue.json(json.loads(params))
            meta[f"{name}_log_likelihood"] = round(ll, 3)
            meta[f"{name}_customers"] = customers
        return dg.AssetCheckResult(passed=status in ("fitted", "skipped"), metadata=meta)

    @check(
        "predictions_backtest",
        "Warns when the model fitted as of D - 90 days mispredicts the repeat purchase days of (D - 90, D] "
        "by more than the configured share (backtest_warn_share, default 20%).",
    )
    def predictions_backtest(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with getattr(context.resources, duck_key).get_connection() as conn:
            prepare(conn)
            row = conn.execute(
                """SELECT c.as_of, c.backtest_status, c.backtest_reason, c.backtest_start,
                          c.backtest_customers, c.backtest_predicted, c.backtest_actual,
                          c.backtest_params, r.parameters
                   FROM clv_runs c LEFT JOIN customer_profile_runs r ON r.as_of = c.as_of
                   WHERE c.as_of = (SELECT max(as_of) FROM customer_profile_runs)"""
            ).fetchone()
            weeks = (
                conn.execute(
                    """SELECT week, period_start, period_end, predicted, actual FROM clv_backtest
                       WHERE as_of = ? ORDER BY week""",
                    [row[0]],
                ).fetchall()
                if row
                else []
            )
        if row is None:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"error": "no back-test recorded"}
            )
        as_of, status, reason, start, customers, predicted, actual, params, run_params = row
        threshold = (
            json.loads(run_params or "{}")
            .get("settings", {})
            .get("backtest_warn_share", base.backtest_warn_share)
        )
        meta: dict[str, Any] = {"as_of": str(as_of), "threshold": threshold}
        if status != "fitted":
            meta["skipped" if status == "skipped" else "reason"] = reason
            return dg.AssetCheckResult(
                passed=status == "skipped", severity=dg.AssetCheckSeverity.WARN, metadata=meta
            )
        share = abs(predicted - actual) / actual if actual else None
        meta.update(
            {
                "holdout": f"({start}, {as_of}]",
                "customers": customers,
                "predicted_N": round(predicted, 1),
                "actual_M": actual,
                "share": None if share is None else round(share, 4),
                "params": dg.MetadataValue.json(json.loads(params)),
                "weeks": dg.MetadataValue.md(
                    backtest_table(
                        [
                            {"week": w, "period_start": a, "period_end": b, "predicted": p, "actual": n}
                            for w, a, b, p, n in weeks
                        ]
                    )
                ),
            }
        )
        passed = share <= threshold if share is not None else predicted < 0.5
        return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=meta)

    return [
        *build_model_assets(cfg, base),
        customer_profile,
        predictions_fit,
        predictions_backtest,
        one_row_per_customer,
        no_alias_emails,
        lifetime_purchases_add_up,
        purchases_resolved,
    ]
