"""list_orders beats the 30-page / 3,000-order cap by splitting windows, and loses no boundary order."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vtex_pipeline.vtex.dates import parse_vtex_datetime, truncate_ms
from vtex_pipeline.vtex.errors import VtexNotFound, VtexRequestFailed
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.orders import fetch_orders, get_order, list_orders
from vtex_pipeline_tests.vtex.clients import fast_client

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 2, tzinfo=UTC)
RANGE_RE = re.compile(r"^creationDate:\[(\S+) TO (\S+)\]$")


def _vtex_time(dt: datetime) -> str:
    """7 fractional digits and an offset, like the OMS sends."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0+00:00"


class OrderListStub:
    """Only the list endpoint's paging and inclusive [A TO B] filter (at ms, as the index compares)."""

    def __init__(self, orders: list[dict[str, Any]]) -> None:
        self.orders = sorted(orders, key=lambda o: (parse_vtex_datetime(o["creationDate"]), o["orderId"]))
        self.keys = [truncate_ms(parse_vtex_datetime(o["creationDate"])) for o in self.orders]
        self.requests: list[dict[str, str]] = []
        self.violations: list[str] = []

        async def list_endpoint(request: Request) -> JSONResponse:
            q = dict(request.query_params)
            self.requests.append(q)
            page = int(q.get("page", 1))
            per_page = min(int(q.get("per_page", 15)), 100)
            if page > 30:
                self.violations.append(f"page {page}")
                return JSONResponse({"error": {"message": "page > 30"}}, status_code=400)
            m = RANGE_RE.match(q.get("f_creationDate", ""))
            assert m, q
            a, b = parse_vtex_datetime(m.group(1)), parse_vtex_datetime(m.group(2))
            matched = [o for o, k in zip(self.orders, self.keys, strict=True) if a <= k <= b]
            chunk = matched[(page - 1) * per_page : page * per_page]
            return JSONResponse(
                {
                    "list": [dict(o, items=None) for o in chunk],
                    "facets": [],
                    "paging": {
                        "total": len(matched),
                        "pages": math.ceil(len(matched) / per_page),
                        "currentPage": page,
                        "perPage": per_page,
                    },
                    "stats": {"stats": {}},
                }
            )

        async def detail_endpoint(request: Request) -> JSONResponse:
            order_id = request.path_params["order_id"]
            if order_id.startswith("fail"):
                return JSONResponse({}, status_code=500)
            for o in self.orders:
                if o["orderId"] == order_id:
                    return JSONResponse(dict(o, items=[]))
            return JSONResponse({"error": {"message": "not found"}}, status_code=404)

        self.app = Starlette(
            routes=[
                Route("/api/oms/pvt/orders", list_endpoint),
                Route("/api/oms/pvt/orders/{order_id}", detail_endpoint),
            ]
        )


def _orders() -> tuple[list[dict[str, Any]], set[str]]:
    rng = random.Random(7)
    orders: list[dict[str, Any]] = []
    expected: set[str] = set()

    def add(order_id: str, when: datetime, inside: bool, channel: str = "1") -> None:
        orders.append({"orderId": order_id, "creationDate": _vtex_time(when), "salesChannel": channel})
        if inside:
            expected.add(order_id)

    # 3,500 in one busy hour (forces several levels of splitting), 3,000 spread over the day
    for i in range(3500):
        add(f"busy-{i}", START + timedelta(hours=10, microseconds=rng.randrange(3_600_000_000)), True)
    for i in range(3000):
        add(f"day-{i}", START + timedelta(microseconds=rng.randrange(86_400_000_000)), True, rng.choice("12"))
    # 40 orders in the very millisecond where the first split lands (the window's midpoint)
    for i in range(40):
        add(f"mid-{i}", START + timedelta(hours=12, microseconds=rng.randrange(1000)), True)
    add("at-start", START, True)
    add("at-end-minus-1us", END - timedelta(microseconds=1), True)
    add("at-end", END, False)
    add("before-start", START - timedelta(microseconds=1), False)
    add("next-day", END + timedelta(hours=1), False)
    return orders, expected


def _client(url: str, **kw: Any) -> VtexClient:
    return fast_client(url, **{"concurrency": 4, **kw})


def test_list_orders_splits_past_the_cap(serve) -> None:
    orders, expected = _orders()
    stub = OrderListStub(orders)
    client = _client(serve(stub.app))
    progress: list[int] = []
    result = list_orders(client, START, END, on_progress=lambda done, total: progress.append(done))
    ids = [o["orderId"] for o in result]
    assert len(ids) == len(set(ids)), "an order was returned twice"
    assert set(ids) == expected
    assert "at-start" in ids and "at-end-minus-1us" in ids and "at-end" not in ids
    assert not stub.violations
    assert all(q["per_page"] == "100" and q["orderBy"] == "creationDate,asc" for q in stub.requests)
    assert progress and progress[-1] == len(expected)
    # the first query is the whole window, as [start TO end-1ms]
    assert (
        stub.requests[0]["f_creationDate"]
        == "creationDate:[2025-01-01T00:00:00.000Z TO 2025-01-01T23:59:59.999Z]"
    )
    # sorted by creation date
    assert [o["creationDate"] for o in result] == sorted(o["creationDate"] for o in result)


def test_list_orders_small_window_and_sales_channels(serve) -> None:
    orders, _ = _orders()
    stub = OrderListStub(orders)
    client = _client(serve(stub.app))
    window_start, window_end = START + timedelta(hours=13), START + timedelta(hours=14)
    result = list_orders(client, window_start, window_end, sales_channels={"2"})
    want = {
        o["orderId"]
        for o in orders
        if o["salesChannel"] == "2"
        and window_start <= truncate_ms(parse_vtex_datetime(o["creationDate"])) < window_end
    }
    assert {o["orderId"] for o in result} == want and len(result) == len(want)
    assert list_orders(client, END, END) == []


def test_fetch_orders_yields_failures(serve) -> None:
    stub = OrderListStub(
        [{"orderId": f"o{i}", "creationDate": _vtex_time(START), "salesChannel": "1"} for i in range(20)]
    )
    client = _client(serve(stub.app))
    ids = [f"o{i}" for i in range(20)] + ["missing-1", "fail-1"]
    progress: list[tuple[int, int | None]] = []
    results = {
        oid: (order, exc)
        for oid, order, exc in fetch_orders(client, ids, on_progress=lambda d, t: progress.append((d, t)))
    }
    assert set(results) == set(ids)
    assert all(results[f"o{i}"][0]["orderId"] == f"o{i}" for i in range(20))
    assert results["missing-1"][0] is None and isinstance(results["missing-1"][1], VtexNotFound)
    assert results["fail-1"][0] is None and isinstance(results["fail-1"][1], VtexRequestFailed)
    assert progress[-1] == (22, 22)
    assert get_order(client, "o3")["orderId"] == "o3"
