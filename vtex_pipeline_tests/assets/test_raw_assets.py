"""Raw assets end to end: real HTTP to the store simulator, a real DuckDB file, real materializations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from vtex_pipeline.partitions import window_start
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline_tests.helpers import (
    all_keys,
    materialize_raw,
    orders_created_in,
    query,
    table_checksum,
    window_of,
)


def _mat_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    for ev in result.get_asset_materialization_events():
        mat = ev.materialization
        if mat.asset_key.path[-1] == name:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {name}")


def _recent_start(days: int = 50) -> date:
    """A partitions start close to today, so tests that need no two-year history stay fast."""
    return (datetime.now(UTC) - timedelta(days=days)).date()


def test_window_over_3000_orders_and_10000_customers_arrive_exactly_once(start_store, vtex_env):
    now = datetime.now(UTC)
    burst = window_start(now - timedelta(days=3))
    fixture = generate_store(customers=10_200, orders=1_500, seed=3, bursts=[(burst, 3_100)], span_days=40)
    store = start_store(fixture)
    cfg = vtex_env(store.url, start_date=_recent_start())
    key = burst.date().isoformat()  # the day partition holding the burst

    result = materialize_raw(cfg, partition_key=key)

    start, end = window_of(key)
    expected = orders_created_in(fixture, start, end, now)
    assert len(expected) > 3_000  # beyond the list's 30-page cap: the window must be split
    got = query(
        cfg, "SELECT order_id FROM raw_orders WHERE creation_date >= ? AND creation_date < ?", [start, end]
    )
    assert sorted(r[0] for r in got) == sorted(expected)
    assert query(cfg, "SELECT count(*), count(DISTINCT order_id) FROM raw_orders")[0] == (
        len(expected),
        len(expected),
    )
    n_items = sum(len(o["items"]) for o in fixture["orders"] if o["orderId"] in expected)
    assert query(cfg, "SELECT count(*) FROM raw_order_items")[0][0] == n_items

    # First customer sync takes every CL document, each exactly once (beyond the 10k search cap).
    ids = sorted(c["id"] for c in fixture["clients"])
    assert [r[0] for r in query(cfg, "SELECT customer_id FROM raw_customers ORDER BY 1")] == ids

    meta = _mat_metadata(result, "raw_orders")
    assert meta["sync/orders_listed"] == len(expected)
    assert meta["api/requests"] >= len(expected) + 31  # every detail + more than 30 list pages
    assert meta["dagster/row_count"] == len(expected)


def test_full_history_in_one_run_matches_the_store(start_store, vtex_env):
    fixture = generate_store(customers=400, orders=1_500, seed=11)
    store = start_store(fixture)
    cfg = vtex_env(store.url)
    keys = all_keys(cfg)
    instance = dg.DagsterInstance.ephemeral()

    result = materialize_raw(cfg, first=keys[0], last=keys[-1], instance=instance)

    runs = instance.get_runs()
    assert len(runs) == 1  # ~760 day partitions, one run
    stats = store.stats()
    assert query(cfg, "SELECT count(*) FROM raw_orders")[0][0] == stats["orders_listable"]
    assert dict(query(cfg, "SELECT status, count(*) FROM raw_orders GROUP BY 1")) == stats["orders_by_status"]
    assert query(cfg, "SELECT count(*) FROM raw_order_items")[0][0] == stats["items"]
    assert query(cfg, "SELECT count(*) FROM raw_customers")[0][0] == stats["customers"] == 400
    # Every partition of the range got its materialization event.
    mats = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "raw_orders"]
    assert {e.partition for e in mats} == set(keys)
    # Catalog: every product the orders refer to is fetched once (found or recorded as missing).
    referenced = {i["productId"] for o in fixture["orders"] for i in o["items"]}
    stored = {r[0] for r in query(cfg, "SELECT product_id FROM raw_products")}
    assert (
        {r[0] for r in query(cfg, "SELECT DISTINCT product_id FROM raw_order_items")} <= stored <= referenced
    )
    missing = {r[0] for r in query(cfg, "SELECT product_id FROM raw_products WHERE NOT found")}
    catalog_ids = {str(p["Id"]) for p in fixture["products"]}
    assert missing == stored - catalog_ids
    assert query(cfg, "SELECT count(*) FROM raw_sales_channels")[0][0] == len(fixture["sales_channels"])
    # A masked e-mail never becomes a customer's e-mail.
    assert query(cfg, "SELECT count(*) FROM raw_customers WHERE email LIKE '%ct.vtex.com.br%'")[0][0] == 0
    aliased = query(
        cfg,
        """SELECT count(*), count(c.customer_id) FROM raw_orders o
           LEFT JOIN raw_customers c ON c.user_id = o.user_profile_id
           WHERE o.client_email_is_alias""",
    )[0]
    assert aliased[0] > 0 and aliased[1] > 0


def test_rerun_changes_nothing_and_a_later_cancellation_is_picked_up(start_store, vtex_env):
    fixture = generate_store(customers=300, orders=1_200, seed=5, span_days=40)
    store = start_store(fixture)
    cfg = vtex_env(store.url, start_date=_recent_start())
    keys = all_keys(cfg)
    materialize_raw(cfg, first=keys[0], last=keys[-2])
    before = {
        t: table_checksum(cfg, t) for t in ("raw_orders", "raw_order_items", "raw_customers", "raw_products")
    }

    materialize_raw(cfg, first=keys[0], last=keys[-2])
    assert {t: table_checksum(cfg, t) for t in before} == before

    # An order from ~10 days ago is cancelled after its partition was synced.
    target_day = datetime.now(UTC) - timedelta(days=10)
    order_id, status, pkey = query(
        cfg,
        """SELECT order_id, status, partition_key FROM raw_orders
           WHERE status <> 'canceled' AND creation_date < ? ORDER BY creation_date DESC LIMIT 1""",
        [target_day],
    )[0]
    store.set_status(order_id, "canceled")
    n_before = query(cfg, "SELECT count(*) FROM raw_orders")[0][0]

    result = materialize_raw(cfg, partition_key=keys[-1])  # today's day, synced whole

    assert query(cfg, "SELECT status, partition_key FROM raw_orders WHERE order_id = ?", [order_id]) == [
        ("canceled", pkey)
    ]
    assert query(cfg, "SELECT count(*) FROM raw_orders")[0][0] == n_before + len(
        orders_created_in(fixture, *window_of(keys[-1]), datetime.now(UTC))
    )
    meta = _mat_metadata(result, "raw_orders")
    assert meta["sync/lookback_changed"] == 1
    assert status != "canceled"


def test_a_refresh_fetches_only_what_is_new_since_the_last_sync(start_store, vtex_env):
    """The schedule's 4-hourly refresh of today's partition starts at the last synced window, not at
    midnight: a day refreshed six times has each order fetched once."""
    now = datetime.now(UTC)
    fixture = generate_store(customers=150, orders=900, seed=21, span_days=6, now=now)  # orders up to now
    store = start_store(fixture)
    cfg = vtex_env(store.url, start_date=_recent_start(8))
    keys = all_keys(cfg)
    materialize_raw(cfg, first=keys[0], last=keys[-1])
    mark = query(cfg, "SELECT watermark FROM sync_state WHERE source = 'orders'")[0][0]
    before = query(cfg, "SELECT count(*) FROM raw_orders")[0][0]

    result = materialize_raw(cfg, partition_key=keys[-1], incremental=True)

    meta = _mat_metadata(result, "raw_orders")
    resumed = window_start(mark - timedelta(microseconds=1))
    assert datetime.fromisoformat(meta["synced_from"]) == resumed
    assert meta["sync/orders_listed"] == len(
        orders_created_in(fixture, resumed, now + timedelta(hours=4), now)
    )
    assert meta["sync/orders_listed"] < len(orders_created_in(fixture, *window_of(keys[-1]), now)) or (
        resumed == window_of(keys[-1])[0]
    )
    assert datetime.fromisoformat(meta["synced_until"]) >= mark
    assert query(cfg, "SELECT count(*) FROM raw_orders")[0][0] == before

    # Re-syncing an old day whole: that day says how far it goes, customers keep their watermark (what
    # the profile sensor reads), so today does not look unsynced afterwards.
    customers_until = datetime.fromisoformat(_mat_metadata(result, "raw_customers")["synced_until"])
    old = materialize_raw(cfg, partition_key=keys[0])
    assert datetime.fromisoformat(_mat_metadata(old, "raw_orders")["synced_until"]) == window_of(keys[0])[1]
    assert datetime.fromisoformat(_mat_metadata(old, "raw_customers")["synced_until"]) >= customers_until
    assert query(cfg, "SELECT count(*) FROM raw_orders")[0][0] == before


def test_429_storm_slows_the_sync_without_losing_a_record(start_store, vtex_env):
    fixture = generate_store(customers=200, orders=600, seed=8, span_days=40)
    store = start_store(fixture, faults="storm429=15,retry_after=1")
    cfg = vtex_env(store.url, start_date=_recent_start())
    keys = all_keys(cfg)

    result = materialize_raw(cfg, first=keys[0], last=keys[-1])

    stats = store.stats()
    assert stats["responses"].get("429", 0) == 15
    assert query(cfg, "SELECT count(*) FROM raw_orders")[0][0] == stats["orders_listable"]
    assert query(cfg, "SELECT count(*) FROM raw_customers")[0][0] == 200
    throttled = sum(
        _mat_metadata(result, n).get("api/throttled", 0)
        for n in ("raw_orders", "raw_customers", "raw_catalog")
    )
    waited = sum(
        _mat_metadata(result, n).get("api/rate_limit_wait_seconds", 0)
        for n in ("raw_orders", "raw_customers", "raw_catalog")
    )
    assert throttled == 15
    assert waited >= 1.0


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"wrong-key": {"token": "x", "permissions": ["*"]}}, "401"),
        (
            {
                "vtexappkey-test-KEY123": {
                    "token": "test-token-SECRET-0000",
                    "permissions": ["oms.view_order", "masterdata.read_documents"],
                }
            },
            "OMS / List Orders",
        ),
    ],
)
def test_auth_errors_fail_the_run_with_a_clear_message(start_store, vtex_env, keys, expected):
    store = start_store(generate_store(customers=20, orders=30, seed=1, span_days=10), app_keys=keys)
    cfg = vtex_env(store.url, start_date=_recent_start(20))
    result = materialize_raw(cfg, partition_key=all_keys(cfg)[-1], raise_on_error=False)
    assert not result.success
    messages = " ".join(
        str(e.event_specific_data.error.to_string()) for e in result.all_events if e.is_step_failure
    )
    assert expected in messages
    assert "test-token-SECRET-0000" not in messages


def test_only_selected_sales_channels_are_kept(start_store, vtex_env):
    fixture = generate_store(customers=100, orders=400, seed=13, span_days=12)
    store = start_store(fixture)
    cfg = vtex_env(store.url, start_date=_recent_start(15), sales_channels=["2"])
    keys = all_keys(cfg)

    materialize_raw(cfg, first=keys[0], last=keys[-1])

    expected = {o["orderId"] for o in fixture["orders"] if o["salesChannel"] == "2"}
    assert expected and len(expected) < len(fixture["orders"])
    assert {r[0] for r in query(cfg, "SELECT order_id FROM raw_orders")} == expected
    assert query(cfg, "SELECT DISTINCT sales_channel FROM raw_orders") == [("2",)]
