"""The checks of `customer_profile` (`profile.py`). The blocking ones keep a broken profile (a customer
twice or missing, a masked alias e-mail, purchases that do not add up) from the export; the others
report the prediction fit and warn on a low resolution share or a poor back-test, since the profile
itself is sound then. Each reads the newest computed date D (`customer_profile_runs`); the warning
thresholds come from the run's recorded settings, else from the integration's `ProfileSettings`.
"""

import json
from datetime import date
from functools import partial
from typing import Any

import dagster as dg
import duckdb

from vtex_pipeline.assets.checks import check, connection, none_counted, scalar
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile.prediction_report import backtest_table
from vtex_pipeline.profile.settings import ProfileSettings

PROFILE_TABLE = "customer_profile"


def _latest_run(conn: duckdb.DuckDBPyConnection) -> tuple[date, dict[str, Any]] | None:
    """As-of date of customer_profile and the parameters it was computed with."""
    row = conn.execute(
        """SELECT r.as_of, r.parameters FROM customer_profile_runs r
           WHERE r.as_of = (SELECT max(as_of) FROM customer_profile_runs)"""
    ).fetchone()
    return (row[0], json.loads(row[1])) if row else None


# the prediction outcome of the newest run and its fitted models (`predictions_fit`)
_FIT_RUN = """SELECT as_of, model, status, reason, buyers, repeat_buyers FROM clv_runs
              WHERE as_of = (SELECT max(as_of) FROM customer_profile_runs)"""
_FITS = "SELECT model, params, log_likelihood, customers FROM clv_model WHERE as_of = ? ORDER BY 1"
# its back-test, with the settings it ran with, and the weeks compared (`predictions_backtest`)
_BACKTEST_RUN = """SELECT c.as_of, c.backtest_status, c.backtest_reason, c.backtest_start,
                          c.backtest_customers, c.backtest_predicted, c.backtest_actual,
                          c.backtest_params, r.parameters
                   FROM clv_runs c LEFT JOIN customer_profile_runs r ON r.as_of = c.as_of
                   WHERE c.as_of = (SELECT max(as_of) FROM customer_profile_runs)"""
_BACKTEST_WEEKS = """SELECT week, period_start, period_end, predicted, actual FROM clv_backtest
                     WHERE as_of = ? ORDER BY week"""


def _newest_run(
    cfg: IntegrationConfig, context: dg.AssetCheckExecutionContext, run_sql: str, rows_sql: str
) -> tuple[tuple | None, list[tuple]]:
    """The row `run_sql` finds for the newest run (its as_of first) and the rows `rows_sql` lists for
    that as_of (`?`), e.g. a fit's parameters or a back-test's weeks."""
    with connection(cfg, context) as conn:
        row = conn.execute(run_sql).fetchone()
        return row, (conn.execute(rows_sql, [row[0]]).fetchall() if row else [])


def build_profile_checks(cfg: IntegrationConfig, base: ProfileSettings) -> list[dg.AssetChecksDefinition]:
    """The checks of `[cfg.name, "customer_profile"]`; `base` gives the thresholds of a run that
    recorded none."""
    on_profile = partial(check, cfg, PROFILE_TABLE)

    @on_profile(
        "one_row_per_customer",
        "customer_id is unique and every CL document created by D (store time zone) has its row.",
        blocking=True,
    )
    def one_row_per_customer(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        # rows the Orders Feed recomputed since (as_of after D) may add customers created after D
        rows, distinct, expected, feed_new = scalar(
            cfg,
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

    @on_profile("no_alias_emails", "No profile e-mail is a masked ct.vtex.com.br alias.", blocking=True)
    def no_alias_emails(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sql = "SELECT count(*) FROM customer_profile WHERE suffix(lower(email), 'ct.vtex.com.br')"
        return none_counted(cfg, context, sql, "alias_emails")

    @on_profile(
        "lifetime_purchases_add_up",
        "orders_360d + orders_360plus equals each customer's purchases up to D, recounted from staging.",
        blocking=True,
    )
    def lifetime_purchases_add_up(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with connection(cfg, context) as conn:
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

    @on_profile(
        "purchases_resolved_to_customers",
        "Warns when the share of purchases up to D resolved to a CL document falls below the threshold.",
    )
    def purchases_resolved(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        row = scalar(
            cfg,
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

    @on_profile(
        "predictions_fit",
        "The prediction models fitted (interior maximum, converged). Passes with 'skipped' when the store "
        "is below the minimums; fails (ERROR, not blocking: the rest of the profile is sound and is exported, "
        "prediction fields empty) when a fit was attempted and failed, with the reason.",
    )
    def predictions_fit(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        row, fits = _newest_run(cfg, context, _FIT_RUN, _FITS)
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

    @on_profile(
        "predictions_backtest",
        "Warns when the model fitted as of D - 90 days mispredicts the repeat purchase days of (D - 90, D] "
        "by more than the configured share (backtest_warn_share, default 20%).",
    )
    def predictions_backtest(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        row, weeks = _newest_run(cfg, context, _BACKTEST_RUN, _BACKTEST_WEEKS)
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
        predictions_fit,
        predictions_backtest,
        one_row_per_customer,
        no_alias_emails,
        lifetime_purchases_add_up,
        purchases_resolved,
    ]
