"""Several simulated VTEX accounts synced concurrently on this machine (the measurement behind docs/scaling.md).

Each account is a separate process — as each Dagster run is under the default or Kubernetes run
launcher — with its own simulator (50 ms per request, 100 requests/s cap), client and DuckDB file.
The parent reports each account's throughput, the aggregate, and the CPU the processes used (client,
parsing, DuckDB writes *and* the in-process simulator, so it over-states the pipeline's own share).

    .venv/bin/python -m benchmarks.multi_account --accounts 4 --orders 3000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.sync_throughput import CAP, LATENCY, Recorder, make_store, sync_once
from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.vtex_server import DEFAULT_APP_KEYS, create_app


def child(orders: int, db: str) -> dict[str, Any]:
    """One account: its own simulator and sync, in this process."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = make_store(2_000, orders, now, span_days=30)
    faults = FaultSpec.parse(f"latency={LATENCY},limit_rps={CAP}")
    rec = Recorder(create_app(store, app_keys=DEFAULT_APP_KEYS, faults=faults, now=lambda: now))
    with ServerThread(rec) as server:
        print("ready", flush=True)  # every account starts syncing at the same moment
        sys.stdin.readline()
        cpu0 = time.process_time()
        out = sync_once(server.url, db, start=now - timedelta(days=30), end=now, now=now)
        cpu = time.process_time() - cpu0
    return {
        "orders": out["orders"],
        "seconds": round(out["seconds"], 2),
        "orders_per_second": round(out["orders"] / out["seconds"], 1),
        "max_requests_in_1s": rec.max_in_one_second(),
        "server_429": sum(1 for _, s in rec.hits if s == 429),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(accounts: int, orders: int) -> dict[str, Any]:
    """Start `accounts` child processes at once and collect their figures."""
    with tempfile.TemporaryDirectory(prefix="multi_account_") as tmp:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.multi_account",
                    "--child",
                    "--orders",
                    str(orders),
                    "--db",
                    str(Path(tmp) / f"account_{i}.duckdb"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for i in range(accounts)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        wall = time.perf_counter() - t0
    total = sum(r["orders"] for r in results)
    cpu = sum(r["cpu_seconds"] for r in results)
    return {
        "accounts": accounts,
        "orders_per_account": orders,
        "wall_seconds": round(wall, 2),
        "aggregate_orders_per_second": round(total / wall, 1),
        "slowest_account_orders_per_second": min(r["orders_per_second"] for r in results),
        "max_requests_in_1s_any_account": max(r["max_requests_in_1s"] for r in results),
        "server_429": sum(r["server_429"] for r in results),
        "sync_cpu_seconds": round(cpu, 1),
        "cpu_ms_per_order": round(1000 * cpu / total, 2),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "per_account": results,
    }


def figures(scale: float) -> list[dict[str, Any]]:
    n = 4
    r = run(n, max(600, int(3_000 * scale)))
    note = (
        f"{n} accounts x {r['orders_per_account']} orders, each capped at {CAP} req/s; "
        f"{r['cpu_ms_per_order']} ms CPU per order (client + simulator), 429s: {r['server_429']}"
    )
    return [
        {"name": f"multi-account: aggregate orders/s ({n} accounts)", "value": r["aggregate_orders_per_second"],
         "unit": "orders/s", "baseline": n * CAP, "target": None, "op": None, "note": note},
        {"name": "multi-account: slowest account orders/s", "value": r["slowest_account_orders_per_second"],
         "unit": "orders/s", "baseline": CAP, "target": None, "op": None, "note": ""},
        {"name": "multi-account: CPU per order synced", "value": r["cpu_ms_per_order"], "unit": "ms",
         "baseline": None, "target": None, "op": None, "note": "for docs/scaling.md: accounts per core"},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=4)
    ap.add_argument("--orders", type=int, default=3_000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.orders, args.db)))
    else:
        print(json.dumps(run(args.accounts, args.orders), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
