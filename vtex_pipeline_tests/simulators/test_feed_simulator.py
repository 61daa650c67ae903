"""Orders Feed v3 in the VTEX simulator, over HTTP: config, lots, visibility, commit, faults, retention."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import load_fixture
from vtex_pipeline.simulators.vtex_server import FEED_APP_KEY, FEED_APP_TOKEN, create_app
from vtex_pipeline.simulators.vtex_server.feed import compile_expression
from vtex_pipeline_tests.conftest import SimStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY, TOKEN = "vtexappkey-sim-FEED", "FEEDTOKEN"
OTHER = "vtexappkey-sim-OTHER"
NOPERM = "vtexappkey-sim-NOFEED"
KEYS = {
    KEY: {"token": TOKEN, "permissions": ["oms.feed", "oms.view_order", "oms.list_orders"]},
    OTHER: {"token": TOKEN, "permissions": ["*"]},
    NOPERM: {"token": TOKEN, "permissions": ["oms.list_orders", "oms.view_order"]},
}
FEED, CONFIG = "/api/orders/feed", "/api/orders/feed/config"
WORKFLOW = {
    "filter": {
        "type": "FromWorkflow",
        "status": ["order-created", "payment-approved", "invoiced", "canceled"],
    },
    "queue": {"visibilityTimeoutInSeconds": 240, "MessageRetentionPeriodInSeconds": 345600},
}
ITEM_KEYS = {"eventId", "handle", "domain", "state", "lastState", "orderId", "lastChange", "currentChange"}


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return generate_store(60, 200, seed=3, now=NOW)


class Sim:
    def __init__(self, url: str) -> None:
        self.url = url

    def h(self, key: str = KEY) -> dict[str, str]:
        return {"X-VTEX-API-AppKey": key, "X-VTEX-API-AppToken": TOKEN}

    def get(self, path: str, key: str = KEY, **params: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.h(key), params=params, timeout=10)

    def post(self, path: str, body: Any, key: str = KEY) -> requests.Response:
        return requests.post(self.url + path, headers=self.h(key), json=body, timeout=10)

    def delete(self, path: str, key: str = KEY) -> requests.Response:
        return requests.delete(self.url + path, headers=self.h(key), timeout=10)

    def status(self, oid: str, status: str) -> None:
        requests.post(
            f"{self.url}/_sim/orders/{oid}/status", json={"status": status}, timeout=10
        ).raise_for_status()

    def advance(self, seconds: float) -> None:
        requests.post(
            self.url + "/_sim/clock", json={"advance_seconds": seconds}, timeout=10
        ).raise_for_status()

    def read(self, maxlot: int = 10, key: str = KEY) -> list[dict[str, Any]]:
        r = self.get(FEED, key, maxlot=maxlot)
        assert r.status_code == 200, r.text
        return r.json()

    def commit(self, handles: list[str], key: str = KEY) -> None:
        r = self.post(FEED, {"handles": handles}, key)
        assert r.status_code == 200, r.text

    def quantity(self, key: str = KEY) -> int:
        return int(self.get(CONFIG, key).json()["quantity"])

    def with_workflow_feed(self, *invoiced: str) -> Sim:
        """The feed configured with WORKFLOW, then the orders `invoiced` invoiced in turn."""
        self.post(CONFIG, WORKFLOW)
        for oid in invoiced:
            self.status(oid, "invoiced")
        return self


@pytest.fixture
def sim(fixture: dict[str, Any], start_store: Callable[..., SimStore]) -> Callable[..., Sim]:
    def start(faults: str = "") -> Sim:
        out = Sim(start_store(copy.deepcopy(fixture), app_keys=KEYS, faults=faults, now=lambda: NOW).url)
        for oid in _oids(fixture, 12):  # before any feed exists: queues nothing
            out.status(oid, "payment-pending")
        out.advance(60)
        return out

    return start


def _oids(fixture: dict[str, Any], n: int) -> list[str]:
    """Orders inside the 2-year horizon that are not canceled yet."""
    recent = NOW - timedelta(days=700)
    return [
        o["orderId"]
        for o in fixture["orders"]
        if o["status"] != "canceled" and o["creationDate"] > recent.isoformat()
    ][:n]


def test_no_config_is_404_and_config_round_trip(sim: Callable[..., Sim]) -> None:
    s = sim()
    assert s.get(FEED, maxlot=10).status_code == 404
    assert s.get(CONFIG).status_code == 404
    assert s.delete(CONFIG).status_code == 404
    r = s.post(CONFIG, WORKFLOW)
    assert r.status_code == 200
    cfg = s.get(CONFIG).json()
    assert cfg == {
        "filter": {
            "type": "FromWorkflow",
            "status": ["order-created", "payment-approved", "invoiced", "canceled"],
            "disableSingleFire": False,
        },
        "queue": {"visibilityTimeoutInSeconds": 240, "messageRetentionPeriodInSeconds": 345600},
        "quantity": 0,
        "approximateAgeOfOldestMessageInSeconds": 0,
    }
    assert s.read() == []  # no backfill: the store's orders existed before the feed
    assert s.get(CONFIG, OTHER).status_code == 404  # one feed per app key
    assert s.delete(CONFIG).status_code == 200
    assert s.get(FEED).status_code == 404


def test_config_validation_409_and_400(sim: Callable[..., Sim]) -> None:
    s = sim()
    both = {
        "filter": {"type": "FromWorkflow", "status": ["invoiced"], "expression": "value > 1"},
        "queue": WORKFLOW["queue"],
    }
    r = s.post(CONFIG, both)
    assert r.status_code == 409 and "both" in r.json()["error"]["message"]
    assert (
        s.post(CONFIG, {**both, "filter": {"type": "FromOrders", "status": ["invoiced"]}}).status_code == 409
    )
    bad_ret = {
        "filter": WORKFLOW["filter"],
        "queue": {"visibilityTimeoutInSeconds": 60, "MessageRetentionPeriodInSeconds": 60},
    }
    r = s.post(CONFIG, bad_ret)
    assert r.status_code == 400 and "345600" in r.json()["error"]["message"]
    assert s.post(CONFIG, {"filter": WORKFLOW["filter"]}).status_code == 400  # queue required
    assert (
        s.post(
            CONFIG,
            {"filter": {"type": "FromOrders", "expression": "status ~> $x"}, "queue": WORKFLOW["queue"]},
        ).status_code
        == 400
    )
    assert s.post(CONFIG, {"filter": {"type": "Other"}, "queue": WORKFLOW["queue"]}).status_code == 400
    assert s.get(CONFIG).status_code == 404  # nothing was saved
    # the lower-case retention spelling (guide, vtexpy) is read too
    lower = {
        "filter": WORKFLOW["filter"],
        "queue": {"visibilityTimeoutInSeconds": 60, "messageRetentionPeriodInSeconds": 1209600},
    }
    assert s.post(CONFIG, lower).status_code == 200
    assert s.get(CONFIG).json()["queue"] == {
        "visibilityTimeoutInSeconds": 60,
        "messageRetentionPeriodInSeconds": 1209600,
    }


def test_403_without_the_feed_permission(sim: Callable[..., Sim]) -> None:
    s = sim()
    for r in (
        s.get(FEED, NOPERM, maxlot=1),
        s.get(CONFIG, NOPERM),
        s.post(CONFIG, WORKFLOW, NOPERM),
        s.post(FEED, {"handles": []}, NOPERM),
    ):
        assert r.status_code == 403 and "Feed v3 and Hook" in r.json()["Message"]
    assert s.get("/api/oms/pvt/orders", NOPERM).status_code == 200


def test_status_changes_feed_items_with_the_documented_shape(
    sim: Callable[..., Sim], fixture: dict[str, Any]
) -> None:
    s = sim()
    assert s.post(CONFIG, WORKFLOW).status_code == 200
    a, b = _oids(fixture, 2)
    s.status(a, "payment-approved")
    s.status(a, "handling")  # not in the status list: no item
    s.status(b, "canceled")
    items = s.read()
    assert [set(i) for i in items] == [ITEM_KEYS, ITEM_KEYS]
    assert [(i["orderId"], i["state"], i["lastState"], i["domain"]) for i in items] == [
        (a, "payment-approved", "payment-pending", "Marketplace"),
        (b, "canceled", "payment-pending", "Marketplace"),
    ]
    assert items[0]["lastChange"] == "2026-03-01T12:00:00.0000000Z"  # when the fixture set it pending
    assert items[0]["currentChange"] == "2026-03-01T12:01:00.0000000Z"
    assert len({i["eventId"] for i in items}) == 2 and all(len(i["eventId"]) == 32 for i in items)
    assert all(i["handle"].count(".") == 2 for i in items)  # JWT-looking, opaque
    # the list and detail APIs see the change too
    detail = s.get(f"/api/oms/pvt/orders/{b}").json()
    assert detail["status"] == "canceled"
    listed = s.get("/api/oms/pvt/orders", f_status="canceled", per_page=100).json()["list"]
    assert b in {o["orderId"] for o in listed}


def test_maxlot_limits(sim: Callable[..., Sim], fixture: dict[str, Any]) -> None:
    s = sim().with_workflow_feed(*_oids(fixture, 12))
    for bad in ("11", "0", "x", "-1"):
        r = s.get(FEED, maxlot=bad)
        assert r.status_code == 400, bad
    assert len(s.read(3)) == 3
    r = requests.get(s.url + FEED, headers=s.h(), timeout=10)  # no maxlot: a lot of 10
    assert r.status_code == 200 and len(r.json()) == 9  # 3 are in flight
    assert s.quantity() == 12


def test_visibility_timeout_redelivers_and_commit_needs_the_latest_handle(
    sim: Callable[..., Sim], fixture: dict[str, Any]
) -> None:
    a, b, c = _oids(fixture, 3)
    s = sim().with_workflow_feed(a, b, c)
    first = s.read()
    assert [i["orderId"] for i in first] == [a, b, c]
    s.commit([first[0]["handle"]])
    assert s.read() == []  # the others are hidden
    s.advance(239)
    assert s.read() == []
    s.advance(1)
    again = s.read()
    assert [i["eventId"] for i in again] == [first[1]["eventId"], first[2]["eventId"]]
    assert {i["handle"] for i in again}.isdisjoint({i["handle"] for i in first})
    s.commit([first[1]["handle"], "not-a-handle"])  # stale and unknown handles: 200, nothing deleted
    assert s.quantity() == 2
    s.commit([i["handle"] for i in again])
    assert s.quantity() == 0
    s.advance(240)
    assert s.read() == []
    feeds = requests.get(s.url + "/_sim/feeds", timeout=10).json()
    assert feeds[KEY]["delivered"] == 5 and feeds[KEY]["committed"] == 3 and feeds[KEY]["quantity"] == 0


def test_orders_created_at_runtime(sim: Callable[..., Sim], fixture: dict[str, Any]) -> None:
    s = sim()
    s.post(CONFIG, {**WORKFLOW, "filter": {"type": "FromWorkflow"}})  # no status list: every status
    like = fixture["orders"][0]
    r = requests.post(
        s.url + "/_sim/orders/new", json={"like": like["orderId"], "status": "payment-pending"}, timeout=10
    )
    assert r.status_code == 200
    oid = r.json()["orderId"]
    assert oid not in {o["orderId"] for o in fixture["orders"]}
    assert [(i["orderId"], i["state"], i["lastState"]) for i in s.read()] == [
        (oid, "order-created", ""),
        (oid, "payment-pending", "order-created"),
    ]
    detail = s.get(f"/api/oms/pvt/orders/{oid}").json()
    assert detail["clientProfileData"] == like["clientProfileData"] and detail["creationDate"].startswith(
        "2026-03-01T12:01:00"
    )
    listed = s.get("/api/oms/pvt/orders", per_page=1).json()["list"]  # newest first
    assert listed[0]["orderId"] == oid and listed[0]["status"] == "payment-pending"


def test_fault_knobs_duplicate_shuffle_and_lose_commits(
    sim: Callable[..., Sim], fixture: dict[str, Any]
) -> None:
    oids = _oids(fixture, 10)
    s = sim("feed_dup=1,seed=4").with_workflow_feed(oids[0])
    items = s.read()
    assert (
        len(items) == 2
        and items[0]["eventId"] == items[1]["eventId"]
        and items[0]["handle"] != items[1]["handle"]
    )
    s.commit([items[0]["handle"]])
    assert s.quantity() == 1  # each copy needs its own commit

    s = sim("feed_shuffle=1,seed=4").with_workflow_feed(*oids)
    got = [i["orderId"] for i in s.read()]
    assert sorted(got) == sorted(oids) and got != oids

    s = sim("feed_lost_commit=1").with_workflow_feed(oids[0])
    (item,) = s.read()
    s.commit([item["handle"]])
    s.advance(240)
    (back,) = s.read()
    assert back["eventId"] == item["eventId"]
    requests.post(s.url + "/_sim/faults", json={"spec": ""}, timeout=10).raise_for_status()
    s.commit([back["handle"]])
    assert s.quantity() == 0


def test_retention_drops_items_and_deletes_a_quiet_feed(
    sim: Callable[..., Sim], fixture: dict[str, Any]
) -> None:
    a, b = _oids(fixture, 2)
    s = sim().with_workflow_feed(a)
    s.advance(3 * 86400)
    s.status(b, "invoiced")
    cfg = s.get(CONFIG).json()
    assert cfg["quantity"] == 2 and cfg["approximateAgeOfOldestMessageInSeconds"] == 3 * 86400
    s.advance(86400)  # a's item is 4 days old: dropped, uncommitted
    assert [i["orderId"] for i in s.read()] == [b]
    s.advance(3 * 86400 - 1)
    assert s.get(CONFIG).status_code == 200
    s.advance(1)  # no event for 4 days: the feed is gone without notice
    assert s.get(CONFIG).status_code == 404 and s.get(FEED).status_code == 404
    s.status(a, "canceled")
    assert s.post(CONFIG, WORKFLOW).status_code == 200 and s.read() == []


def test_from_orders_expression_and_single_fire(sim: Callable[..., Sim], fixture: dict[str, Any]) -> None:
    s = sim()
    a, b = _oids(fixture, 2)
    cfg = {
        "filter": {"type": "FromOrders", "expression": 'status = "invoiced"', "disableSingleFire": False},
        "queue": WORKFLOW["queue"],
    }
    assert s.post(CONFIG, cfg).status_code == 200
    s.status(a, "invoiced")
    s.advance(1)
    s.status(a, "invoiced")  # lastChange moves: the JSON changed, but single fire
    s.status(b, "handling")
    assert [(i["orderId"], i["state"]) for i in s.read()] == [(a, "invoiced")]
    cfg["filter"]["disableSingleFire"] = True
    s.post(CONFIG, cfg)
    s.status(a, "invoiced")  # the same second: nothing changed, no item
    s.advance(1)
    s.status(a, "invoiced")
    assert [(i["orderId"], i["state"]) for i in s.read()] == [(a, "invoiced")]


def test_feeds_are_per_app_key(sim: Callable[..., Sim], fixture: dict[str, Any]) -> None:
    s = sim()
    s.post(CONFIG, WORKFLOW)
    s.post(CONFIG, WORKFLOW, OTHER)
    (a,) = _oids(fixture, 1)
    s.status(a, "invoiced")
    mine, theirs = s.read(), s.read(key=OTHER)
    assert len(mine) == len(theirs) == 1 and mine[0]["eventId"] != theirs[0]["eventId"]
    s.commit([mine[0]["handle"]], key=OTHER)  # another key's handle does nothing
    assert s.quantity() == 1 and s.quantity(OTHER) == 1


def test_jsonata_subset() -> None:
    doc = {
        "status": "invoiced",
        "value": 15000,
        "salesChannel": "2",
        "items": [{"id": "1", "quantity": 2}, {"id": "2", "quantity": 1}],
        "clientProfileData": {"email": "a@b.com"},
        "marketingData": None,
    }
    cases = {
        'status = "invoiced"': True,
        "status = 'canceled'": False,
        '(status = "invoiced" and salesChannel="2")': True,
        'status = "canceled" or value > 100': True,
        "value >= 15000 and value < 15001": True,
        "$count(items) > 1": True,
        "items.quantity = 2": True,
        "items.quantity > 5": False,
        '$exists(clientProfileData.email) and clientProfileData.email != ""': True,
        "$exists(nope)": False,
        "$not(marketingData = null)": False,
        'status in ["invoiced", "canceled"]': True,
        "nope = 1": False,
    }
    assert {e: compile_expression(e)(doc) for e in cases} == cases
    with pytest.raises(ValueError):
        compile_expression("$sum(items.price) > 1")


def test_jsonata_endpoint(sim: Callable[..., Sim]) -> None:
    s = sim()
    r = s.post("/api/orders/expressions/jsonata", {"Expression": "value > 100", "Document": '{"value": 150}'})
    assert r.status_code == 200 and r.json() is True


def test_default_keys_include_a_feed_key(fixture: dict[str, Any]) -> None:
    """The default simulator has the feed's own key (feed + orders only), beside the all-permission key."""
    with ServerThread(create_app(load_fixture(copy.deepcopy(fixture)), now=lambda: NOW)) as server:
        h = {"X-VTEX-API-AppKey": FEED_APP_KEY, "X-VTEX-API-AppToken": FEED_APP_TOKEN}
        assert requests.post(server.url + CONFIG, headers=h, json=WORKFLOW, timeout=10).status_code == 200
        assert requests.get(server.url + FEED, headers=h, timeout=10).json() == []
        assert (
            requests.get(server.url + "/api/dataentities/CL/search", headers=h, timeout=10).status_code == 403
        )
