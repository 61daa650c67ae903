"""Orders synced per second against the simulator with 50 ms per request and a 100 requests/s cap.

VTEX's per-account rate limit bounds a first sync, so the figure that matters is how close the client
gets to the cap without crossing it. The simulator answers every /api request after `latency` and
answers 429 when more than `limit_rps` arrived in the last second; arrivals are also recorded here,
server side, so "never above the cap" is measured where VTEX would measure it.

    .venv/bin/python -m benchmarks.sync_throughput --orders 6000
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from benchmarks.cli import json_main
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import load_fixture
from vtex_pipeline.simulators.vtex_server import DEFAULT_APP_KEYS, create_app
from vtex_pipeline.sync.orders import sync_orders
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline.warehouse.connection import prepare

CAP = 100
LATENCY = 0.05
APP_KEY = next(iter(DEFAULT_APP_KEYS))
APP_TOKEN = DEFAULT_APP_KEYS[APP_KEY]["token"]

Scope = dict[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class Recorder:
    """ASGI wrapper recording (arrival time, status) of every /api request, as the server sees it."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.hits: list[tuple[float, int]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.hits.append((arrived, int(message["status"])))
            await send(message)

        await self.app(scope, receive, send_status)

    def max_in_one_second(self) -> int:
        """The most requests that arrived within any 1-second window (sliding, server side)."""
        times = sorted(t for t, _ in self.hits)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


def make_store(customers: int, orders: int, now: datetime, span_days: int) -> Any:
    """A simulated store whose `orders` all fall in the last `span_days` days."""
    return load_fixture(
        generate_store(customers=customers, orders=orders, seed=7, now=now, span_days=span_days)
    )


def sync_once(
    url: str,
    db: str,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    rps: float = CAP,
    concurrency: int = 16,
    name: str = "bench",
) -> dict[str, Any]:
    """One orders sync of [start, end) into `db`; wall time, orders and the client's request stats."""
    cfg = IntegrationConfig(name=name, duckdb_path=db, start_date=(start - timedelta(days=1)).date())
    settings = VtexSettings(
        base_url=url, app_key=APP_KEY, app_token=APP_TOKEN, requests_per_second=rps, concurrency=concurrency
    )
    conn = duckdb.connect(db)
    prepare(conn)
    try:
        with VtexClient(settings) as client:
            t0 = time.perf_counter()
            report = sync_orders(client, conn, cfg, start=start, end=end, now=now)
            elapsed = time.perf_counter() - t0
            api = client.stats.snapshot()
    finally:
        conn.close()
    return {"seconds": elapsed, "orders": report.counts.get("orders_written", 0), "api": api}


def run(orders: int, concurrency: int = 16, db: str = ":memory:") -> dict[str, Any]:
    """Serve a store of `orders` orders (last 30 days) with latency and the cap, sync it, measure."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = make_store(2_000, orders, now, span_days=30)
    faults = FaultSpec.parse(f"latency={LATENCY},limit_rps={CAP}")
    rec = Recorder(create_app(store, app_keys=DEFAULT_APP_KEYS, faults=faults, now=lambda: now))
    with ServerThread(rec) as server:
        out = sync_once(
            server.url, db, start=now - timedelta(days=30), end=now, now=now, concurrency=concurrency
        )
    requests = len(rec.hits)
    throttled = sum(1 for _, status in rec.hits if status == 429)
    return {
        "orders": out["orders"],
        "seconds": round(out["seconds"], 2),
        "orders_per_second": round(out["orders"] / out["seconds"], 1),
        "requests_per_second": round(requests / out["seconds"], 1),
        "max_requests_in_1s": rec.max_in_one_second(),
        "server_429": throttled,
        "requests": requests,
        "client": {k: v for k, v in out["api"].items() if k != "by_call"},
        "cap": CAP,
        "latency": LATENCY,
        "concurrency": concurrency,
    }


def figures(scale: float) -> list[dict[str, Any]]:
    r = run(max(1_000, int(6_000 * scale)))
    note = (
        f"{r['orders']} orders in {r['seconds']} s, {r['requests']} requests, 50 ms latency, "
        f"client concurrency {r['concurrency']}, server 429s: {r['server_429']}"
    )
    return [
        {"name": "sync: orders per second", "value": r["orders_per_second"], "unit": "orders/s",
         "baseline": CAP, "target": 0.9 * CAP, "op": ">=", "note": note},
        {"name": "sync: requests per second", "value": r["requests_per_second"], "unit": "req/s",
         "baseline": CAP, "target": 0.9 * CAP, "op": ">=", "note": "baseline = the cap"},
        {"name": "sync: max requests in any 1 s (server)", "value": r["max_requests_in_1s"], "unit": "req",
         "baseline": CAP, "target": CAP, "op": "<=", "note": f"429 answers from limit_rps: {r['server_429']}"},
        {"name": "sync: 429s from the cap (server)", "value": r["server_429"], "unit": "responses",
         "baseline": None, "target": 0, "op": "<=", "note": ""},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = {"--orders": dict(type=int, default=6_000), "--concurrency": dict(type=int, default=16)}
    return json_main(__doc__, argv, options, lambda args: run(args.orders, args.concurrency))


if __name__ == "__main__":
    raise SystemExit(main())
