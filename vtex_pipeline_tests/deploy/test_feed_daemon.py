"""The Orders Feed path under the real daemon on PostgreSQL, from the project's wheel installed in a fresh
virtual environment, run outside the checkout, as `deploy/` runs it: a checkout reaches icomm within two minutes, and its cancellation too.

`vtex-pipeline run` fills the DuckDB file and computes the daily profile of yesterday; then the code
server and the daemon run with the sensor `vtex_orders_feed` on (10 s ticks here; 30 s by default). The
sensor configures the feed with its own key, stores the events and requests `vtex_orders_feed_batch`; the
latency is from the simulator's change of the order to icomm accepting the buyer's contact.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline_tests.deploy.daemon_stack import wait
from vtex_pipeline_tests.deploy.feed_stack import FEED_JOB, feed_stack
from vtex_pipeline_tests.wheel_venv import wheel_venv

pytestmark = [pytest.mark.daemon, pytest.mark.postgres, pytest.mark.timeout(1500)]
TWO_MINUTES = 120
REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_and_its_cancellation_reach_icomm_within_two_minutes(postgres_cluster, tmp_path: Path):
    import dagster as dg

    pg_env = postgres_cluster.env(postgres_cluster.create_database("feed_daemon"))
    now = datetime.now(UTC)
    today, d = now.date(), now.date() - timedelta(days=1)
    store = generate_store(customers=200, orders=900, seed=23, now=now, span_days=45)
    fixture = tmp_path / "store.json"
    fixture.write_text(json.dumps(store, default=str), encoding="utf-8")
    start = (today - timedelta(days=50)).isoformat()
    bin_dir = wheel_venv(REPO, tmp_path / "wheel")
    with feed_stack(tmp_path / "run", pg_env, fixture, start=start, interval=10, bin_dir=bin_dir) as stack:
        stack.cli("run", "--as-of", d.isoformat())  # the sync and the daily profile of D, exported
        daily = {r["Email"].lower(): r["fields"] for r in stack.received()}
        assert daily, "the daily export sent nothing"
        # a buyer the daily export sent, whose last purchase is days old
        clients = {c["userId"]: c for c in store["clients"]}
        old = (now - timedelta(days=3)).isoformat()
        template, email = next(
            (o["orderId"], clients[o["clientProfileData"]["userProfileId"]]["email"])
            for o in sorted(store["orders"], key=lambda o: o["orderId"])
            if o["status"] == "invoiced" and o["creationDate"] < old
            and o["clientProfileData"].get("userProfileId") in clients
            and clients[o["clientProfileData"]["userProfileId"]]["email"].lower() in daily
        )  # fmt: skip
        before = daily[email.lower()]["LAST_PURCHASE_DATE"]
        stack.start_daemon()
        wait(
            "the sensor configured the feed",
            lambda: stack.procs.check_alive() or stack.feed_configured(),
            180,
            1,
        )

        oid, t0 = stack.new_order(template, "payment-approved")
        arrived = wait(
            "the checkout's contact in icomm",
            lambda: stack.procs.check_alive() or stack.arrival(email, t0, lambda r: r["fields"]["LAST_PURCHASE_DATE"] != before),
            300, 1,
        )  # fmt: skip
        checkout_latency = arrived - t0
        after_checkout = stack.arrival(email, t0)
        t1 = stack.set_status(oid, "canceled")
        arrived = wait(
            "the cancellation's contact in icomm",
            lambda: stack.procs.check_alive() or stack.arrival(email, t1, lambda r: r["fields"]["LAST_PURCHASE_DATE"] == before),
            300, 1,
        )  # fmt: skip
        cancel_latency = arrived - t1
        print(f"feed latency: checkout {checkout_latency:.1f} s, cancellation {cancel_latency:.1f} s")
        assert after_checkout is not None
        assert checkout_latency <= TWO_MINUTES and cancel_latency <= TWO_MINUTES

        saved = {k: os.environ.get(k) for k in pg_env}
        os.environ.update(pg_env)
        try:
            with dg.DagsterInstance.from_config(str(stack.home)) as instance:
                # the contact reaches icomm inside the batch's step: the run records its end a moment later
                wait(
                    "the feed batch runs to end",
                    lambda: all(
                        r.dagster_run.is_finished
                        for r in instance.get_run_records(dg.RunsFilter(job_name=FEED_JOB))
                    ),
                    120,
                    1,
                )
                runs = instance.get_run_records(dg.RunsFilter(job_name=FEED_JOB))
                assert runs and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
                assert len(runs) <= 6, "one batch per tick with events, not one per event"
                mat = instance.get_latest_materialization_event(dg.AssetKey(["vtex", "feed_contacts"]))
                meta = mat.asset_materialization.metadata
                assert meta["customers_recomputed"].value >= 1
                assert meta["reference_as_of"].value == d.isoformat()
                check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                    [dg.AssetCheckKey(dg.AssetKey(["vtex", "feed_contacts"]), "feed_lag_within_bound")]
                )
                (execution,) = check.values()
                assert execution.evaluation.passed  # type: ignore[union-attr]
                observed = instance.fetch_observations(dg.AssetKey(["vtex", "orders_feed_events"]), limit=100)
                states = {e["state"] for r in observed.records
                          for e in r.asset_observation.metadata["events"].value}  # fmt: skip
                assert {"payment-approved", "canceled"} <= states
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    with duckdb.connect(str(stack.duckdb), read_only=True) as conn:
        row = conn.execute(
            "SELECT as_of, last_purchase_date FROM customer_profile WHERE lower(email) = lower(?)", [email]
        ).fetchone()
    assert row[0] == today  # recomputed by the feed for today, the canceled order not counted
    assert row[1] < today
