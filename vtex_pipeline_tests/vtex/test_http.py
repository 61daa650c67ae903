"""The HTTP core against a scripted local server: retries, error mapping, pacing, secrecy."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vtex_pipeline.http_core import RateLimiter, RequestStats, parse_retry_after
from vtex_pipeline.vtex import permissions
from vtex_pipeline.vtex.errors import (
    VtexAuthError,
    VtexError,
    VtexNotFound,
    VtexPermissionError,
    VtexRequestFailed,
)
from vtex_pipeline.vtex.http import VtexClient, VtexSettings, map_concurrent
from vtex_pipeline_tests.vtex.clients import fast_client

KEY = "vtexappkey-mystore-SECRETKEY9"
TOKEN = "TOKEN-abcdefghijklmnopqrstuvwxyz-0123456789"

Script = Callable[[Request, int], Any]


class Scripted:
    """A catch-all app: `script(request, n)` (n = 1-based count of requests to that path) answers."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.counts: dict[str, int] = defaultdict(int)
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

        async def handler(request: Request) -> Response:
            with self._lock:
                self.times.append(time.monotonic())
                self.counts[request.url.path] += 1
                n = self.counts[request.url.path]
                self.headers.append(dict(request.headers))
            result = self.script(request, n)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        self.app = Starlette(routes=[Route("/{path:path}", handler, methods=["GET", "POST"])])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# the stub's account and credentials, 4 workers and a 5 s timeout; make_client adds to FAST (clients.py)
# more attempts and a longer back-off, which the retry tests count on
HTTP_SETTINGS = dict(
    account="mystore", app_key=KEY, app_token=TOKEN, requests_per_second=1000, concurrency=4, timeout=5
)


def make_client(url: str, **overrides: Any) -> VtexClient:
    return fast_client(url, **{**HTTP_SETTINGS, "max_attempts": 4, "backoff_max": 0.05, **overrides})


def ok(body: Any = None) -> JSONResponse:
    return JSONResponse({"ok": True} if body is None else body)


def test_sends_auth_headers(serve) -> None:
    srv = Scripted(lambda r, n: ok())
    with make_client(serve(srv.app)) as client:
        assert client.get_json("/api/x", call="x") == {"ok": True}
    h = srv.headers[0]
    assert h["x-vtex-api-appkey"] == KEY and h["x-vtex-api-apptoken"] == TOKEN
    assert h["accept"] == "application/json"


def test_429_retry_after_then_200(serve) -> None:
    srv = Scripted(lambda r, n: Response(status_code=429, headers={"Retry-After": "1"}) if n == 1 else ok())
    client = make_client(serve(srv.app))
    t0 = time.monotonic()
    assert client.get_json("/api/oms/pvt/orders", call="oms.list_orders") == {"ok": True}
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.0
    assert srv.times[1] - srv.times[0] >= 0.99
    stats = client.stats.snapshot()
    assert stats["requests"] == 2 and stats["retries"] == 1 and stats["throttled"] == 1
    assert stats["server_errors"] == 0
    assert stats["rate_limit_wait_seconds"] >= 1.0
    assert stats["by_call"] == {"oms.list_orders": 2}


def test_503_three_times_then_200(serve, caplog: pytest.LogCaptureFixture) -> None:
    srv = Scripted(
        lambda r, n: JSONResponse({"Message": f"down {TOKEN}"}, status_code=503) if n <= 3 else ok()
    )
    client = make_client(serve(srv.app))
    with caplog.at_level("DEBUG", logger="vtex_pipeline.vtex"):
        assert client.get_json("/api/x", call="x") == {"ok": True}
    retries = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(retries) == 3 and "status 503" in retries[0].getMessage()
    assert all(TOKEN not in r.getMessage() and KEY not in r.getMessage() for r in caplog.records)
    stats = client.stats.snapshot()
    assert srv.total == 4
    assert stats["server_errors"] == 3 and stats["retries"] == 3 and stats["throttled"] == 0


def test_malformed_json_then_200(serve) -> None:
    srv = Scripted(
        lambda r, n: Response('{"list": [{"orderId": "1"', media_type="application/json") if n == 1 else ok()
    )
    client = make_client(serve(srv.app))
    assert client.get_json("/api/x", call="x") == {"ok": True}
    assert srv.total == 2 and client.stats.snapshot()["retries"] == 1


def test_timeout_then_200(serve) -> None:
    async def script(request: Request, n: int) -> Response:
        if n == 1:
            await asyncio.sleep(1.0)
        return ok()

    srv = Scripted(script)
    client = make_client(serve(srv.app), timeout=0.3)
    assert client.get_json("/api/x", call="x") == {"ok": True}
    assert srv.total == 2 and client.stats.snapshot()["retries"] == 1


def test_permanent_503_raises_request_failed(serve) -> None:
    srv = Scripted(lambda r, n: Response(status_code=503))
    client = make_client(serve(srv.app), max_attempts=3)
    with pytest.raises(VtexRequestFailed) as info:
        client.get_json("/api/oms/pvt/orders", params={"page": 1, "secret": TOKEN}, call="oms.list_orders")
    err = info.value
    text = str(err)
    assert err.attempts == 3 and err.last_status == 503 and srv.total == 3
    assert "oms.list_orders" in text and "GET /api/oms/pvt/orders" in text
    assert "3 attempts" in text and "503" in text
    assert "page=" not in text and TOKEN not in text


def test_connection_refused_raises_request_failed() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(VtexRequestFailed) as info:
        client.get_json("/api/x", params={"userId": "someone@example.com"}, call="x")
    assert info.value.last_status is None and "ConnectionError" in str(info.value)
    assert "someone" not in str(info.value)
    assert KEY not in str(info.value) and TOKEN not in str(info.value)


def test_401_is_auth_error_not_retried(serve) -> None:
    srv = Scripted(lambda r, n: JSONResponse({"Message": "unauthorized"}, status_code=401))
    client = make_client(serve(srv.app))
    with pytest.raises(VtexAuthError) as info:
        client.get_json("/api/oms/pvt/orders", call="oms.list_orders")
    assert str(info.value) == (
        "VTEX rejected the app key or token (401) on GET /api/oms/pvt/orders: check VTEX_APP_KEY / "
        "VTEX_APP_TOKEN and that the key is linked to a role"
    )
    assert srv.total == 1


def test_403_names_the_permission(serve) -> None:
    srv = Scripted(lambda r, n: JSONResponse({"Message": "forbidden"}, status_code=403))
    client = make_client(serve(srv.app))
    with pytest.raises(VtexPermissionError) as info:
        client.get_json("/api/oms/pvt/orders", params={"page": 1}, call="oms.list_orders")
    assert info.value.permission == permissions.LIST_ORDERS
    text = str(info.value)
    assert "OMS / List Orders" in text
    assert "ICOMMKT_Integration" in text and "VTEX Admin > Account settings > User roles" in text
    with pytest.raises(VtexPermissionError) as info:
        client.get_json("/api/catalog_system/pvt/sku/stockkeepingunitbyid/12", call="catalog.sku")
    assert info.value.permission == permissions.SKU and "Catalog / SKU" in str(info.value)
    assert srv.total == 2


def test_404_and_other_4xx(serve) -> None:
    def script(request: Request, n: int) -> Response:
        if request.url.path.endswith("missing"):
            return JSONResponse({"error": {"message": "Order not found"}}, status_code=404)
        # a body that echoes the token must not leak it
        return JSONResponse({"Message": f"Field 'foo' is not filterable ({TOKEN})"}, status_code=400)

    srv = Scripted(script)
    client = make_client(serve(srv.app))
    with pytest.raises(VtexNotFound) as nf:
        client.get_json("/api/oms/pvt/orders/missing", call="oms.get_order")
    assert nf.value.status == 404 and "Order not found" in str(nf.value)
    with pytest.raises(VtexError) as info:
        client.get_json("/api/dataentities/CL/search", call="md")
    assert info.value.status == 400 and "not filterable" in str(info.value)
    assert TOKEN not in str(info.value)
    assert srv.total == 2  # neither retried


def test_rate_limiter_caps_requests_per_second(serve) -> None:
    """concurrency 8, 20 rps over ~2 s: no 1-second window above 20, throughput ≥ 90% of the cap."""
    srv = Scripted(lambda r, n: ok())
    client = make_client(serve(srv.app), requests_per_second=20, concurrency=8)
    client.get_json("/warmup", call="warmup")  # connection set-up out of the measurement
    srv.times.clear()
    time.sleep(0.1)
    results = list(map_concurrent(lambda i: client.get_json(f"/api/{i}", call="rl"), range(41), 8))
    assert all(exc is None for _, _, exc in results)
    times = sorted(srv.times)
    assert len(times) == 41
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u < t + 1.0)
        assert in_window <= 20, f"{in_window} requests within 1 s starting at request {i}"
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.9 * 20, rate
    assert client.stats.snapshot()["rate_limit_wait_seconds"] > 1.0


def test_rate_limiter_unit() -> None:
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s

    limiter = RateLimiter(4, slack=0.02, clock=lambda: clock[0], sleep=sleep)
    waits = [limiter.acquire() for _ in range(6)]
    # 1/rate spacing, and the 5th request waits for the 1st to leave the 1-second window (+ slack)
    assert waits[0] == 0 and waits[1:] == pytest.approx([0.25, 0.25, 0.25, 0.27, 0.25])
    limiter.defer(2.0)
    assert limiter.acquire() == pytest.approx(2.0)
    # a fractional cap: 2.5/s means at most 2 in any second
    clock[0] = 100.0
    limiter = RateLimiter(2.5, slack=0.0, clock=lambda: clock[0], sleep=sleep)
    times = []
    for _ in range(7):
        limiter.acquire()
        times.append(clock[0])
    assert all(sum(1 for u in times if t <= u < t + 1.0) <= 2 for t in times)


def test_secrets_never_shown(serve) -> None:
    settings = VtexSettings(account="mystore", app_key=KEY, app_token=TOKEN)
    for text in (repr(settings), str(settings)):
        assert KEY not in text and TOKEN not in text and "***" in text
    srv = Scripted(
        lambda r, n: JSONResponse(
            {"Message": f"bad key {r.headers.get('x-vtex-api-appkey')}"}, status_code=401 if n == 1 else 418
        )
    )
    client = make_client(serve(srv.app))
    assert KEY not in repr(client) and TOKEN not in repr(client)
    errors: list[Exception] = []
    for _ in range(2):
        try:
            client.get_json("/api/oms/pvt/orders", call="oms.list_orders")
        except VtexError as exc:
            errors.append(exc)
    assert len(errors) == 2
    for exc in errors:
        assert KEY not in str(exc) and TOKEN not in str(exc) and KEY not in repr(exc)


def test_settings_from_env() -> None:
    s = VtexSettings.from_env(
        {
            "VTEX_ACCOUNT": "acme",
            "VTEX_APP_KEY": "k",
            "VTEX_APP_TOKEN": "t",
            "VTEX_REQUESTS_PER_SECOND": "2.5",
            "VTEX_CONCURRENCY": "3",
            "VTEX_BASE_URL": "",
        }
    )
    assert s.base == "https://acme.vtexcommercestable.com.br"
    assert s.requests_per_second == 2.5 and s.concurrency == 3 and s.app_key == "k"
    s = VtexSettings.from_env({"VTEX_ACCOUNT": "acme", "VTEX_BASE_URL": "http://127.0.0.1:9/"})
    assert s.base == "http://127.0.0.1:9"
    d = VtexSettings.from_env({})
    assert d.requests_per_second == 10.0 and d.concurrency == 4
    with pytest.raises(VtexError):
        _ = d.base
    with pytest.raises(ValueError, match="VTEX_CONCURRENCY"):
        VtexSettings.from_env({"VTEX_CONCURRENCY": "many"})


def test_parse_retry_after() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_map_concurrent_bounded_window() -> None:
    pulled = 0
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def items():
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i

    def fn(i: int) -> int:
        nonlocal in_flight, max_in_flight
        with lock:
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
        time.sleep(0.001)
        with lock:
            in_flight -= 1
        if i == 7:
            raise ValueError("boom")
        return i * 2

    seen = 0
    for item, result, exc in map_concurrent(fn, items(), 4):
        assert pulled <= seen + 4 + 1
        seen += 1
        if item == 7:
            assert result is None and isinstance(exc, ValueError)
        else:
            assert result == item * 2 and exc is None
    assert seen == 200 and max_in_flight <= 4


def test_request_stats_snapshot() -> None:
    stats = RequestStats()
    stats.record_request("a")
    stats.add_wait(0.5)
    assert stats.snapshot() == {
        "requests": 1,
        "retries": 0,
        "throttled": 0,
        "server_errors": 0,
        "rate_limit_wait_seconds": 0.5,
        "by_call": {"a": 1},
    }
