"""The Orders Feed v3 client against the VTEX simulator over HTTP."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.vtex.errors import RecordError, VtexAuthError, VtexError
from vtex_pipeline.vtex.feed import (
    FeedFilter,
    FeedItem,
    FeedMissing,
    FeedPermissionError,
    OrdersFeed,
    check_feed_permission,
    dedupe,
    feed_settings,
)
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline_tests.conftest import SimStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY, TOKEN = "vtexappkey-sim-FEEDKEY", "FEED-TOKEN-SECRET"
NOPERM = "vtexappkey-sim-NOFEED"
KEYS = {
    KEY: {"token": TOKEN, "permissions": ["oms.feed"]},
    NOPERM: {"token": TOKEN, "permissions": ["oms.list_orders", "oms.view_order"]},
}
ENV = {"VTEX_FEED_APP_KEY": KEY, "VTEX_FEED_APP_TOKEN": TOKEN}
FLT = FeedFilter.workflow(["payment-approved", "invoiced", "canceled"])


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return generate_store(40, 150, seed=8, now=NOW)


class Box:
    def __init__(self, url: str, oids: list[str]) -> None:
        self.url = url
        self.oids = oids

    def client(self, key: str = KEY, token: str = TOKEN) -> VtexClient:
        base = VtexSettings(base_url=self.url, requests_per_second=500, max_attempts=2, backoff_base=0.01)
        settings = feed_settings(base, {"VTEX_FEED_APP_KEY": key, "VTEX_FEED_APP_TOKEN": token})
        assert settings is not None
        return VtexClient(settings)

    def configured_feed(self) -> OrdersFeed:
        """An OrdersFeed on the feed key, its configuration FLT with a 120 s visibility and 4 days' retention."""
        feed = OrdersFeed(self.client())
        feed.ensure_config(FLT, visibility_timeout=120, retention=345_600)
        return feed

    def requests(self) -> dict[str, int]:
        """The simulator's request counts by route."""
        return requests.get(self.url + "/_sim/stats", timeout=10).json()["requests"]

    def status(self, oid: str, status: str) -> None:
        r = requests.post(f"{self.url}/_sim/orders/{oid}/status", json={"status": status}, timeout=10)
        r.raise_for_status()

    def advance(self, seconds: float) -> None:
        r = requests.post(self.url + "/_sim/clock", json={"advance_seconds": seconds}, timeout=10)
        r.raise_for_status()

    def quantity(self) -> int:
        return int(requests.get(self.url + "/_sim/feeds", timeout=10).json()[KEY]["quantity"])


@pytest.fixture
def sim(fixture: dict[str, Any], start_store: Callable[..., SimStore]) -> Callable[..., Box]:
    recent = (NOW - timedelta(days=700)).isoformat()
    oids = [
        o["orderId"] for o in fixture["orders"] if o["status"] == "invoiced" and o["creationDate"] > recent
    ]

    def start(faults: str = "") -> Box:
        store = start_store(copy.deepcopy(fixture), app_keys=KEYS, faults=faults, now=lambda: NOW)
        return Box(store.url, oids)

    return start


def test_ensure_config_creates_keeps_replaces_and_recreates(sim: Callable[..., Box]) -> None:
    box = sim()
    feed = OrdersFeed(box.client())
    assert feed.get_config() is None
    assert feed.ensure_config(FLT, visibility_timeout=300, retention=1_209_600) == "created"
    cfg = feed.get_config()
    assert cfg is not None
    assert (cfg.filter, cfg.visibility_timeout, cfg.retention, cfg.quantity) == (FLT, 300, 1_209_600, 0)
    reordered = FeedFilter.workflow(["canceled", "invoiced", "payment-approved"])
    assert feed.ensure_config(reordered, visibility_timeout=300, retention=1_209_600) == "unchanged"
    assert feed.ensure_config(FLT, visibility_timeout=600, retention=1_209_600) == "updated"
    assert feed.get_config().visibility_timeout == 600  # type: ignore[union-attr]
    # a quiet feed vanishes after its retention: ensure_config brings it back
    box.advance(1_209_600)
    with pytest.raises(FeedMissing, match="retention"):
        feed.read()
    assert feed.ensure_config(FLT, visibility_timeout=600, retention=1_209_600) == "created"
    assert feed.read() == []
    assert feed.delete_config() is True and feed.delete_config() is False
    with pytest.raises(ValueError, match="4 to 14 days"):
        feed.set_config(FLT, 60, retention=60)


def test_read_commit_and_redelivery_after_the_visibility_timeout(sim: Callable[..., Box]) -> None:
    box = sim()
    feed = box.configured_feed()
    a, b, c = box.oids[:3]
    for oid in (a, b, c):
        box.status(oid, "canceled")
    lot = feed.read()
    assert [(i.order_id, i.state, i.last_state, i.domain) for i in lot] == [
        (oid, "canceled", "invoiced", "Marketplace") for oid in (a, b, c)
    ]
    assert lot[0].current_change == NOW and isinstance(lot[0].last_change, datetime)
    assert feed.commit([lot[0].handle]) == 1
    assert feed.read() == []
    box.advance(120)
    again = feed.read()
    assert [i.event_id for i in again] == [lot[1].event_id, lot[2].event_id]
    assert feed.commit([lot[1].handle]) == 1  # stale: accepted, does nothing
    assert box.quantity() == 2
    assert feed.commit([i.handle for i in again] + [again[0].handle, ""]) == 2
    assert box.quantity() == 0


def test_maxlot_is_clamped_and_commits_go_in_tens(sim: Callable[..., Box]) -> None:
    box = sim()
    feed = box.configured_feed()
    for oid in box.oids[:23]:
        box.status(oid, "canceled")
    first = feed.read(maxlot=50)
    assert len(first) == 10
    assert len(feed.read(maxlot=0)) == 1
    rest = feed.read(10) + feed.read(10)
    assert len(rest) == 12
    assert feed.commit(i.handle for i in first + rest) == 22
    stats = box.requests()
    assert stats["POST /api/orders/feed"] == 3  # 22 handles: 10 + 10 + 2
    assert stats["/api/orders/feed"] == 4 and box.quantity() == 1


def test_read_up_to_loops_over_full_lots(sim: Callable[..., Box]) -> None:
    box = sim()
    feed = box.configured_feed()
    for oid in box.oids[:25]:
        box.status(oid, "canceled")
    first = feed.read_up_to(12)
    assert [i.order_id for i in first] == box.oids[:12]
    rest = feed.read_up_to(100)
    assert [i.order_id for i in rest] == box.oids[12:25]
    assert feed.read_up_to(100) == []
    stats = box.requests()
    assert stats["/api/orders/feed"] == 2 + 2 + 1  # 10+2, 10+3 (short lot stops), 0


def test_duplicates_are_deduped_and_each_copy_committed(sim: Callable[..., Box]) -> None:
    box = sim("feed_dup=1,seed=2")
    feed = box.configured_feed()
    box.status(box.oids[0], "payment-approved")
    box.status(box.oids[1], "canceled")
    lot = feed.read()
    assert len(lot) == 4
    unique = dedupe(lot)
    assert [(i.order_id, i.state) for i in unique] == [
        (box.oids[0], "payment-approved"),
        (box.oids[1], "canceled"),
    ]
    feed.commit(i.handle for i in lot)
    assert box.quantity() == 0


def test_409_when_both_filter_types_are_sent(sim: Callable[..., Box]) -> None:
    feed = OrdersFeed(sim().client())
    both = FeedFilter("FromWorkflow", ("invoiced",), 'status = "invoiced"')
    with pytest.raises(VtexError) as exc:
        feed.set_config(both, 60, 345_600)
    assert exc.value.status == 409
    assert feed.get_config() is None
    assert feed.ensure_config(FeedFilter.orders('status = "invoiced"'), 60, 345_600) == "created"
    assert feed.get_config().filter == FeedFilter.orders('status = "invoiced"')  # type: ignore[union-attr]


def test_404_without_a_config(sim: Callable[..., Box]) -> None:
    feed = OrdersFeed(sim().client())
    with pytest.raises(FeedMissing) as exc:
        feed.read()
    assert exc.value.status == 404 and "never created" in str(exc.value)
    with pytest.raises(FeedMissing):
        feed.commit(["x"])
    assert feed.commit([]) == 0  # nothing to send: no call


def test_403_names_the_feed_permission_and_the_probe(sim: Callable[..., Box]) -> None:
    box = sim()
    denied = OrdersFeed(box.client(NOPERM))
    with pytest.raises(FeedPermissionError) as exc:
        denied.read()
    msg = str(exc.value)
    assert exc.value.status == 403 and "OMS / Feed v3 and Hook Admin" in msg
    assert "VTEX_FEED_APP_KEY / VTEX_FEED_APP_TOKEN" in msg and "ICOMMKT" not in msg
    with pytest.raises(FeedPermissionError):
        denied.ensure_config(FLT, 60, 345_600)

    ok, message = check_feed_permission(box.client(NOPERM))
    assert not ok and "lacks OMS / Feed v3 and Hook Admin" in message
    assert check_feed_permission(box.client()) == (
        True,
        "OMS / Feed v3 and Hook Admin: allowed; no feed configured yet (the pipeline creates it)",
    )
    OrdersFeed(box.client()).ensure_config(FLT, 60, 345_600)
    box.status(box.oids[0], "canceled")
    assert check_feed_permission(box.client()) == (
        True,
        "OMS / Feed v3 and Hook Admin: allowed; feed configured (FromWorkflow, 1 queued, oldest 0 s)",
    )
    ok, message = check_feed_permission(box.client(token="WRONG-TOKEN-VALUE"))
    assert not ok and "401" in message and "VTEX_FEED_APP_KEY / VTEX_FEED_APP_TOKEN" in message
    assert "WRONG-TOKEN-VALUE" not in message


def test_wrong_token_raises_auth_error_without_secrets(sim: Callable[..., Box]) -> None:
    feed = OrdersFeed(sim().client(token="ANOTHER-SECRET-TOKEN"))
    with pytest.raises(VtexAuthError) as exc:
        feed.read()
    assert "ANOTHER-SECRET-TOKEN" not in str(exc.value) and "VTEX_FEED_APP_TOKEN" in str(exc.value)


def test_feed_settings_from_env() -> None:
    base = VtexSettings(account="store", app_key="main-key-1234", app_token="main-token-1234")
    assert feed_settings(base, {}) is None
    assert feed_settings(base, {"VTEX_FEED_APP_KEY": "k"}) is None
    s = feed_settings(base, ENV)
    assert s is not None and (s.app_key, s.app_token, s.account) == (KEY, TOKEN, "store")
    assert TOKEN not in repr(s)
    shop_env = {"SHOP_FEED_KEY": "kk", "SHOP_FEED_TOKEN": "tt"}
    custom = feed_settings(base, shop_env, key_var="SHOP_FEED_KEY", token_var="SHOP_FEED_TOKEN")
    assert custom is not None and custom.credential_vars == "SHOP_FEED_KEY / SHOP_FEED_TOKEN"


def test_feed_item_parsing() -> None:
    item = FeedItem.from_json(
        {
            "eventId": "ED42",
            "handle": "h",
            "domain": "Fulfillment",
            "state": "ready-for-handling",
            "lastState": "window-to-cancel",
            "orderId": "953712004126-01",
            "lastChange": "2019-08-12T20:54:01.134057Z",
            "currentChange": "2019-08-12T20:54:23.7153839Z",
        }
    )
    assert item.current_change == datetime(2019, 8, 12, 20, 54, 23, 715383, tzinfo=UTC)
    assert item.last_change == datetime(2019, 8, 12, 20, 54, 1, 134057, tzinfo=UTC)
    with pytest.raises(RecordError):
        FeedItem.from_json({"eventId": "x", "orderId": "1-01", "state": "invoiced"})
