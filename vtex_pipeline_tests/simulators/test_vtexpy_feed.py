"""A real VTEX client (vtexpy, from PyPI) calling the simulator's Orders Feed v3 over HTTP.

vtexpy always builds https://{account}.vtexcommercestable.com.br URLs, so its httpx client gets a
transport that sends the same request to the simulator on 127.0.0.1; everything else (paths, headers,
bodies, its status handling and snake-casing) is vtexpy's own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest
import requests

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import load_fixture
from vtex_pipeline.simulators.vtex_server import create_app

vtex = pytest.importorskip("vtex")
vtex_base = pytest.importorskip("vtex._api.base")

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY, TOKEN = "vtexappkey-sim-FEED", "FEEDTOKEN"
KEYS = {KEY: {"token": TOKEN, "permissions": ["oms.feed", "oms.view_order", "oms.list_orders"]}}
SNAKE_ITEM_KEYS = {
    "event_id",
    "handle",
    "domain",
    "state",
    "last_state",
    "order_id",
    "last_change",
    "current_change",
}


class _ToSimulator(httpx.BaseTransport):
    """Sends vtexpy's requests to the simulator, unchanged apart from scheme, host and port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.HTTPTransport()
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.raw_path.decode()))
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, _ToSimulator, list[str]]]:
    fx = generate_store(40, 120, seed=5, now=NOW)
    oids = [o["orderId"] for o in fx["orders"] if o["status"] == "invoiced" and o["creationDate"] > "2025"][
        :3
    ]
    app = create_app(load_fixture(copy.deepcopy(fx)), app_keys=KEYS, now=lambda: NOW)
    with ServerThread(app) as server:
        transport = _ToSimulator(server.port)
        monkeypatch.setattr(vtex_base, "Client", partial(httpx.Client, transport=transport))
        config = vtex.VTEXConfig(
            account_name="simstore",
            app_key=KEY,
            app_token=TOKEN,
            retry_attempts=0,
            log_retries=False,
            log_1xx=False,
            log_2xx=False,
            log_3xx=False,
            log_4xx=False,
            log_5xx=False,
        )
        yield vtex.VTEX(config=config), server.url, transport, oids


def test_vtexpy_feed_calls_are_answered_as_vtex_would(
    client: tuple[Any, str, _ToSimulator, list[str]],
) -> None:
    api, url, transport, oids = client
    with pytest.raises(vtex.VTEXResponseError) as missing:
        api.orders.get_feed_config()
    assert missing.value.status_code == 404
    with pytest.raises(vtex.VTEXResponseError) as no_feed:
        api.orders.list_feed_orders()
    assert no_feed.value.status_code == 404

    created = api.orders.set_feed_config(
        status=["invoiced", "canceled"], visibility_timeout=120, message_retention_period=345600
    )
    assert created.status_code == 200
    config = api.orders.get_feed_config().data
    assert config == {
        "filter": {"disable_single_fire": False, "status": ["invoiced", "canceled"], "type": "FromWorkflow"},
        "queue": {"message_retention_period_in_seconds": 345600, "visibility_timeout_in_seconds": 120},
        "quantity": 0,
        "approximate_age_of_oldest_message_in_seconds": 0,
    }

    for oid in oids:
        requests.post(
            f"{url}/_sim/orders/{oid}/status", json={"status": "canceled"}, timeout=10
        ).raise_for_status()
    lot = api.orders.list_feed_orders(page_size=50)  # vtexpy clamps to maxlot=10
    assert lot.status_code == 200
    assert [(i["order_id"], i["state"], i["last_state"]) for i in lot.items] == [
        (oid, "canceled", "invoiced") for oid in oids
    ]
    assert all(set(i) == SNAKE_ITEM_KEYS for i in lot.items)
    assert api.orders.list_feed_orders().items == []  # in flight until the visibility timeout

    committed = api.orders.commit_feed_orders([i["handle"] for i in lot.items])
    assert committed.status_code == 200
    assert api.orders.get_feed_config().data["quantity"] == 0

    detail = api.orders.get_order(oids[0]).data
    assert detail["status"] == "canceled" and detail["order_id"] == oids[0]

    # an order created at run time: on the feed, and first in vtexpy's List orders (newest first)
    new = requests.post(f"{url}/_sim/orders/new", json={"like": oids[1], "status": "canceled"}, timeout=10)
    new_id = new.json()["orderId"]
    assert [(i["order_id"], i["state"]) for i in api.orders.list_feed_orders().items] == [
        (new_id, "canceled")
    ]
    listed = api.orders.list_orders(page_size=100).items
    assert listed[0]["order_id"] == new_id and listed[0]["status"] == "canceled"
    assert {o["order_id"]: o["status"] for o in listed}[oids[2]] == "canceled"

    assert api.orders.delete_feed_config().status_code == 200
    with pytest.raises(vtex.VTEXResponseError) as gone:
        api.orders.list_feed_orders()
    assert gone.value.status_code == 404

    assert ("GET", "/api/orders/feed?maxlot=10") in transport.seen
    assert ("POST", "/api/orders/feed") in transport.seen
    assert ("POST", "/api/orders/feed/config") in transport.seen
