"""The sensor `vtex_orders_feed` and the job `vtex_orders_feed_batch` from the real Definitions, against the
VTEX and icomm simulators over HTTP and a real Dagster instance: the feed is configured and re-created,
events are stored before their handles are committed (never lost if storing fails), a batch applies
them and exports the contact, and no second batch is requested while one is in flight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import requests
from click.testing import CliRunner

from vtex_pipeline.cli import main
from vtex_pipeline.definitions import build_definitions
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.icomm_server import create_icomm_app
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline_tests.conftest import APP_KEY, APP_TOKEN

FEED_KEY, FEED_TOKEN = "vtexappkey-sensor-FEED", "feed-T0KEN-sensor"
ICOMM_KEY, PROFILE = "icomm-sensor-key", "sensor-profile"
KEYS = {
    APP_KEY: {"token": APP_TOKEN, "permissions": ["*"]},
    FEED_KEY: {"token": FEED_TOKEN, "permissions": ["oms.feed"]},
}


@pytest.fixture
def icomm(tmp_path):
    server = ServerThread(
        create_icomm_app(api_keys={ICOMM_KEY}, profiles={PROFILE}, out_path=str(tmp_path / "c.jsonl"))
    ).start()
    yield server.url
    server.stop()


def _feeds(url: str) -> dict:
    return requests.get(url + "/_sim/feeds", timeout=10).json()


def _failing_store(*args, **kwargs):
    raise RuntimeError("instance down")


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
        return sensor.evaluate_tick(ctx)


def test_sensor_and_batch_apply_a_checkout_and_guard_their_events(start_store, vtex_env, icomm, monkeypatch):
    today = datetime.now(UTC).date()
    store_fixture = generate_store(80, 400, seed=31, span_days=40)
    store = start_store(store_fixture, app_keys=KEYS)
    vtex_env(store.url)
    for var, value in {"VTEX_PIPELINE_START_DATE": (today - timedelta(days=45)).isoformat(),
                       "ICOMM_BASE_URL": icomm, "ICOMM_API_KEY": ICOMM_KEY, "ICOMM_PROFILE_KEY": PROFILE}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    res = CliRunner().invoke(
        main, ["run", "--as-of", (today - timedelta(days=1)).isoformat()], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "vtex_orders_feed" not in {s.name for s in build_definitions().sensors}  # off without its key
    monkeypatch.setenv("VTEX_FEED_APP_KEY", FEED_KEY)
    monkeypatch.setenv("VTEX_FEED_APP_TOKEN", FEED_TOKEN)
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("vtex_orders_feed")
    job = defs.resolve_job_def("vtex_orders_feed_batch")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED

    with dg.instance_for_test() as instance:
        first = _tick(sensor, instance, None)
        assert first.skip_message == "no new feed events" and not first.run_requests
        cfg = _feeds(store.url)[FEED_KEY]
        assert cfg["filter"]["type"] == "FromWorkflow" and "canceled" in cfg["filter"]["status"]
        assert cfg["queue"]["visibilityTimeoutInSeconds"] == 300

        like = next(o["orderId"] for o in store_fixture["orders"] if o["status"] == "invoiced")
        new = requests.post(
            store.url + "/_sim/orders/new", json={"like": like, "status": "payment-approved"}, timeout=10
        ).json()
        second = _tick(sensor, instance, first.cursor)
        (request,) = second.run_requests
        obs = instance.fetch_observations(dg.AssetKey(["vtex", "orders_feed_events"]), limit=5).records
        assert {e["orderId"] for e in obs[0].asset_observation.metadata["events"].value} == {new["orderId"]}
        assert _feeds(store.url)[FEED_KEY]["quantity"] == 0  # committed once stored

        result = job.execute_in_process(instance=instance, tags=request.tags)
        assert result.success
        (mat,) = result.asset_materializations_for_node("vtex__feed_contacts")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["orders"] == 1 and meta["customers_recomputed"] >= 1 and meta["icomm/sent"] >= 1
        assert meta["feed/processed_upto"] == obs[0].storage_id
        (check,) = result.get_asset_check_evaluations()
        assert check.passed
        received = requests.get(icomm + "/_sim/contacts", timeout=10).json()
        assert any(f["Key"] == "LAST_PURCHASE_DATE" for r in received for f in r["CustomFields"])
        assert _tick(sensor, instance, second.cursor).skip_message == "no new feed events"
        # the daily profile's checks still hold with rows the feed recomputed for today
        profile = dg.AssetKey(["vtex", "customer_profile"])
        checks = [dg.AssetCheckKey(profile, n) for n in ("one_row_per_customer", "lifetime_purchases_add_up")]
        passed = {}
        for key in checks:  # invoked directly: a job of a partitioned asset's checks alone cannot be built
            (checks_def,) = [c for c in defs.asset_checks if key in c.check_keys]
            ctx = dg.build_asset_check_context(instance=instance)  # the checks carry their resources
            passed[key.name] = checks_def(ctx).passed
        assert passed == {
            "one_row_per_customer": True,
            "lifetime_purchases_add_up": True,
        }

        # the feed deleted at VTEX (a quiet retention period): the next tick configures it again
        requests.delete(store.url + "/api/orders/feed/config", headers={"X-VTEX-API-AppKey": FEED_KEY,
                        "X-VTEX-API-AppToken": FEED_TOKEN}, timeout=10).raise_for_status()  # fmt: skip
        assert FEED_KEY not in _feeds(store.url)
        _tick(sensor, instance, second.cursor)
        assert FEED_KEY in _feeds(store.url)

        # storing fails: nothing is committed, VTEX keeps the event (it comes back after the timeout)
        requests.post(
            f"{store.url}/_sim/orders/{new['orderId']}/status", json={"status": "invoiced"}, timeout=10
        )
        with monkeypatch.context() as m:
            m.setattr("vtex_pipeline.feed.sensor.store_events", _failing_store)
            with pytest.raises(RuntimeError, match="instance down"):
                _tick(sensor, instance, second.cursor)
        assert _feeds(store.url)[FEED_KEY]["quantity"] == 1
        requests.post(store.url + "/_sim/clock", json={"advance_seconds": 301}, timeout=10).raise_for_status()

        # a batch in flight: the event is stored and committed, no second run is requested
        instance.add_run(
            dg.DagsterRun(job_name=job.name, run_id="f" * 36, status=dg.DagsterRunStatus.STARTED)
        )
        busy = _tick(sensor, instance, second.cursor)
        assert not busy.run_requests and "queued or running" in busy.skip_message
        assert _feeds(store.url)[FEED_KEY]["quantity"] == 0
