"""Incremental cost: one 4-hour sync window adding 5,000 orders to a large store, then the profile refresh.

The sync's own work (listing bookkeeping, parsing, the look-back comparison, the DuckDB writes) is
separated from waiting on the API by timing every call into the VTEX client (`list_orders`, and each
step of the `fetch_orders` generator) and subtracting it from the wall time. The same window is also
synced into an empty database: equal own work in both shows the cost follows the new orders, not the
size of the store.

    .venv/bin/python -m benchmarks.incremental --db big.duckdb [--orders 5000]
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

import vtex_pipeline.sync.orders as orders_mod
from benchmarks.cli import json_main
from benchmarks.sync_throughput import sync_once
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile import ProfileSettings, compute_profile
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import load_fixture
from vtex_pipeline.simulators.vtex_server import DEFAULT_APP_KEYS, create_app
from vtex_pipeline.warehouse.connection import prepare


class ApiClock:
    """Seconds the sync thread spent blocked in VTEX calls (list pages, detail fetches)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, s: float) -> None:
        with self._lock:
            self.seconds += s


@contextmanager
def api_timed() -> Iterator[ApiClock]:
    """Patch the sync module's two API entry points with timed wrappers for the duration."""
    clock = ApiClock()
    list_orders, fetch_orders = orders_mod.list_orders, orders_mod.fetch_orders

    def timed_list(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return list_orders(*a, **kw)
        finally:
            clock.add(time.perf_counter() - t0)

    def timed_fetch(*a: Any, **kw: Any) -> Iterator[Any]:
        it = iter(fetch_orders(*a, **kw))
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                clock.add(time.perf_counter() - t0)
                return
            clock.add(time.perf_counter() - t0)
            yield item

    orders_mod.list_orders, orders_mod.fetch_orders = timed_list, timed_fetch  # type: ignore[assignment]
    try:
        yield clock
    finally:
        orders_mod.list_orders, orders_mod.fetch_orders = list_orders, fetch_orders


def window_sync(db: str, new_orders: int, now: datetime) -> dict[str, Any]:
    """Serve `new_orders` orders created in the last closed 4-hour window and sync that window into `db`."""
    end = now.replace(hour=now.hour - now.hour % 4, minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=4)
    fixture = generate_store(customers=5_000, orders=0, seed=11, now=now, bursts=[(start, new_orders)])
    app = create_app(load_fixture(fixture), app_keys=DEFAULT_APP_KEYS, now=lambda: now)
    with ServerThread(app) as server, api_timed() as clock:
        out = sync_once(server.url, db, start=start, end=end, now=now, rps=10_000, concurrency=8)
    own = out["seconds"] - clock.seconds
    return {"seconds": round(out["seconds"], 2), "api_seconds": round(clock.seconds, 2),
            "own_seconds": round(own, 2), "orders": out["orders"], "requests": out["api"]["requests"]}  # fmt: skip


def run(db: str, new_orders: int = 5_000, timezone: str = "America/Sao_Paulo") -> dict[str, Any]:
    """Sync one window into `db` (a large store) and into an empty file, then refresh the profile of `db`."""
    now = datetime.now(UTC)
    conn = duckdb.connect(db)
    store_orders = conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0]
    conn.close()
    big = window_sync(db, new_orders, now)
    with tempfile.TemporaryDirectory(prefix="incremental_") as tmp:
        empty = window_sync(str(Path(tmp) / "empty.duckdb"), new_orders, now)
    conn = duckdb.connect(db)
    prepare(conn)
    conn.execute("SET threads = 2")
    cfg = IntegrationConfig(name="bench", timezone=timezone, duckdb_path=db)
    t0 = time.perf_counter()
    compute_profile(conn, cfg, ProfileSettings(memory_limit="3.5GB"), as_of=date.today())
    refresh = time.perf_counter() - t0
    conn.close()
    return {
        "store_orders": store_orders,
        "into_store": big,
        "into_empty": empty,
        "profile_refresh_seconds": round(refresh, 2),
    }


def figures(db: str, scale: float) -> list[dict[str, Any]]:
    r = run(db, max(500, int(5_000 * scale)))
    big, empty = r["into_store"], r["into_empty"]
    return [
        {"name": "incremental: sync own work (4-h window)", "value": big["own_seconds"], "unit": "s",
         "baseline": empty["own_seconds"], "target": 10, "op": "<=",
         "note": f"{big['orders']} new orders into {r['store_orders']:,} (baseline: same window into an empty "
                 f"file); wall {big['seconds']} s of which API {big['api_seconds']} s"},
        {"name": "incremental: profile refresh after it", "value": r["profile_refresh_seconds"], "unit": "s",
         "baseline": None, "target": 15, "op": "<=", "note": "full recompute of customer_profile as of today"},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = {
        "--db": dict(required=True, help="a DuckDB file with a large store (benchmarks.profile_scale)"),
        "--orders": dict(type=int, default=5_000),
    }
    return json_main(__doc__, argv, options, lambda args: run(args.db, args.orders))


if __name__ == "__main__":
    raise SystemExit(main())
