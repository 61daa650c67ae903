"""The Orders Feed path as a deployment runs it, shared by `test_feed_daemon.py` and
`benchmarks/feed_latency.py`: the VTEX simulator serving a feed key, the icomm simulator, the code server
and the daemon on an instance (deploy/dagster.yaml on PostgreSQL, or the packaged SQLite one), the
account configured from the environment with the feed's own key, and the sensor `vtex_orders_feed`
started. No pytest here: the benchmark imports it.

Latency is measured end to end: from the moment the simulator changed an order (its answer to the
admin call) to the moment the icomm simulator accepted a contact for that order's buyer (the `ts` of
its request log line).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from vtex_pipeline_tests.deploy.daemon_stack import (
    BIN,
    Processes,
    base_env,
    free_port,
    run_cli,
    start_code_server_and_daemon,
    write_home,
    write_workspace,
)

VTEX_KEY, VTEX_TOKEN = "vtexappkey-feedstore-MAIN", "feed-main-T0KEN-not-secret"
FEED_KEY, FEED_TOKEN = "vtexappkey-feedstore-FEED", "feed-only-T0KEN-not-secret"
ICOMM_KEY, PROFILE = "icomm-feed-K3Y", "feed-profile"
SENSOR = "vtex_orders_feed"
FEED_JOB = "vtex_orders_feed_batch"


@dataclass
class FeedStack:
    tmp: Path
    env: dict[str, str]
    procs: Processes
    workspace: Path
    home: Path
    vtex_url: str
    icomm_out: Path
    duckdb: Path
    grpc_port: int
    bin_dir: Path = BIN  # the installed package's bin/ (a wheel's venv in the test)

    def cli(self, *args: str, timeout: float = 600) -> str:
        return run_cli([str(self.bin_dir / "vtex-pipeline"), *args], self.env, self.tmp, timeout=timeout)

    def dagster(self, *args: str) -> str:
        return run_cli([str(self.bin_dir / "dagster"), *args, "-w", str(self.workspace)], self.env, self.tmp)

    def start_daemon(self) -> None:
        start_code_server_and_daemon(
            self.procs, self.env, self.tmp, self.grpc_port, self.workspace, self.bin_dir
        )
        self.dagster("sensor", "start", SENSOR)

    def feed_configured(self) -> bool:
        return FEED_KEY in requests.get(self.vtex_url + "/_sim/feeds", timeout=10).json()

    def new_order(self, like: str, status: str = "payment-approved") -> tuple[str, float]:
        """A checkout copied from order `like` (same buyer); returns (order id, time of the change)."""
        r = requests.post(
            self.vtex_url + "/_sim/orders/new", json={"like": like, "status": status}, timeout=30
        )
        r.raise_for_status()
        return r.json()["orderId"], time.time()

    def set_status(self, order_id: str, status: str) -> float:
        r = requests.post(
            f"{self.vtex_url}/_sim/orders/{order_id}/status", json={"status": status}, timeout=30
        )
        r.raise_for_status()
        return time.time()

    def received(self) -> list[dict[str, Any]]:
        """The icomm simulator's request log: one line per accepted contact, with its time."""
        if not self.icomm_out.exists():
            return []
        out = []
        for line in self.icomm_out.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            rec["t"] = datetime.fromisoformat(rec["ts"]).timestamp()
            rec["fields"] = {f["Key"]: f["Value"] for f in rec.get("CustomFields") or []}
            out.append(rec)
        return out

    def arrival(self, email: str, after: float, check: Any = None) -> float | None:
        """When the first contact for `email` accepted after `after` (satisfying `check`) arrived."""
        for rec in self.received():
            if rec["Email"].lower() == email.lower() and rec["t"] >= after and (check is None or check(rec)):
                return rec["t"]
        return None


def _env(tmp: Path, pg_env: dict[str, str], home: Path, vtex_url: str, icomm_url: str, duckdb: Path,
         start: str, interval: int) -> dict[str, str]:  # fmt: skip
    env = base_env(tmp, pg_env, home)
    env.update(
        {
            "VTEX_ACCOUNT": "feedstore",
            "VTEX_BASE_URL": vtex_url,
            "VTEX_APP_KEY": VTEX_KEY,
            "VTEX_APP_TOKEN": VTEX_TOKEN,
            "VTEX_FEED_APP_KEY": FEED_KEY,
            "VTEX_FEED_APP_TOKEN": FEED_TOKEN,
            "VTEX_PIPELINE_FEED_INTERVAL_SECONDS": str(interval),
            "VTEX_PIPELINE_DUCKDB": str(duckdb),
            "VTEX_PIPELINE_START_DATE": start,
            "VTEX_REQUESTS_PER_SECOND": "200",
            "ICOMM_BASE_URL": icomm_url,
            "ICOMM_API_KEY": ICOMM_KEY,
            "ICOMM_PROFILE_KEY": PROFILE,
        }
    )
    return env


@contextlib.contextmanager
def feed_stack(
    tmp: Path,
    pg_env: dict[str, str] | None,
    fixture: Path,
    *,
    start: str,
    interval: int = 30,
    duckdb: Path | None = None,
    vtex_faults: str = "",
    bin_dir: Path = BIN,
) -> Iterator[FeedStack]:
    """Simulators up and the environment ready; the caller fills the DuckDB file (`stack.cli("run", ...)`
    or a prepared file) and then calls `start_daemon`. `pg_env` None: the packaged SQLite instance."""
    for sub in ("logs", "data"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    home = write_home(tmp, pg_env)
    vtex_port, icomm_port, grpc_port = free_port(), free_port(), free_port()
    vtex_url, icomm_url = f"http://127.0.0.1:{vtex_port}", f"http://127.0.0.1:{icomm_port}"
    icomm_out = tmp / "icomm-requests.jsonl"
    duckdb = duckdb or tmp / "data" / "feedstore.duckdb"
    env = _env(tmp, pg_env or {}, home, vtex_url, icomm_url, duckdb, start, interval)
    procs = Processes(tmp / "logs", marker=f"VTEX_TEST_MARKER={tmp}")
    cli = str(bin_dir / "vtex-pipeline")
    try:
        procs.start(
            "vtex_simulator",
            [cli, "simulate", "vtex", "--port", str(vtex_port), "--fixture", str(fixture),
             "--app-key", VTEX_KEY, "--app-token", VTEX_TOKEN, "--feed-app-key", FEED_KEY,
             "--feed-app-token", FEED_TOKEN, *(["--faults", vtex_faults] if vtex_faults else [])],
            env, tmp,
        )  # fmt: skip
        procs.start(
            "icomm_simulator",
            [cli, "simulate", "icomm", "--port", str(icomm_port), "--out", str(icomm_out),
             "--api-key", ICOMM_KEY, "--profile", PROFILE],
            env, tmp,
        )  # fmt: skip
        procs.wait_ports("simulator", (vtex_port, icomm_port), 120)
        workspace = write_workspace(tmp / "workspace.yaml", grpc_port)
        yield FeedStack(tmp, env, procs, workspace, home, vtex_url, icomm_out, duckdb, grpc_port, bin_dir)
    except BaseException:
        print(procs.dump())
        raise
    finally:
        procs.stop_all()
