"""N VTEX accounts synced by the real dagster-daemon, one 4-hourly cycle (the deployment of docs/scaling.md).

For each N (default 1, 4, 16): a fresh PostgreSQL database (throwaway cluster), deploy/dagster.yaml
(QueuedRunCoordinator, pools `default_limit: 1`, DefaultRunLauncher through a gRPC code server) with
`max_concurrent_runs` as the host cap, one integrations file with N accounts, each served by its own
simulator (in this process: 50 ms per request, `limit_rps` cap per account, orders in the last few days)
and synced at the same cap by its client. The cycle is driven **by the schedules**: every
`<name>_raw_sync_every_4h` is switched on (`dagster schedule start --start-all`) with a per-minute cron,
the first tick queues one run per account (from the start date, a few days back, to the closed window's
day) and the daemon dequeues them; the schedules are switched off (`dagster schedule wipe`) once that
tick's runs exist, so each account syncs once.

Reported per N:
- cycle wall: first run created (queued) -> last of those runs finished, from the instance's run records;
- CPU seconds per order: utime + stime of the run worker processes (sampled from /proc every 0.2 s,
  last sample before exit) over the orders stored in the N DuckDB files; the simulators' CPU is not in it;
- peak memory: the largest run worker's VmHWM, and the most RSS the run workers held at one sample;
- DuckDB overlaps: pairs of steps of one pool `duckdb_<name>` whose STEP_START..STEP_SUCCESS/FAILURE
  windows intersect (two writers of one file at once); must be 0;
- a timeline per run, in seconds from the first run's creation: created, launched (RUN_STARTING: the
  coordinator handed it to the launcher), started (RUN_START: its process began executing), ended.

    .venv/bin/python -m benchmarks.multi_account_daemon                 # N = 1 4 16, a few minutes
    .venv/bin/python -m benchmarks.multi_account_daemon --accounts 1 4 --orders 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.sync_throughput import make_store
from vtex_pipeline.partitions import window_start
from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.vtex_server import DEFAULT_APP_KEYS, create_app
from vtex_pipeline_tests.deploy.daemon_stack import (
    BIN,
    Processes,
    base_env,
    free_port,
    pool_overlaps,
    run_cli,
    start_code_server_and_daemon,
    step_windows,
    wait,
    write_instance,
    write_workspace,
)
from vtex_pipeline_tests.postgres import PostgresCluster, throwaway_postgres

LATENCY = 0.05
CAP = 10  # requests/s per account, server and client: VTEX's default politeness of this pipeline
CLK_TCK = os.sysconf("SC_CLK_TCK")
APP_KEY, APP_TOKEN = next(iter(DEFAULT_APP_KEYS.items()))[0], next(iter(DEFAULT_APP_KEYS.values()))["token"]


class RunWorkerSampler:
    """Polls /proc for the run worker processes (new processes carrying our marker whose command line
    runs a Dagster run) and keeps each one's last CPU time and peak RSS."""

    def __init__(self, marker: str, exclude: set[int], interval: float = 0.2) -> None:
        self.marker = marker.encode()
        self.exclude = exclude
        self.interval = interval
        self.cpu: dict[int, float] = {}
        self.hwm_kb: dict[int, int] = {}
        self.peak_total_rss_kb = 0
        self.cmdlines: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RunWorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = 0
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) in self.exclude:
                    continue
                pid = int(entry.name)
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if pid not in self.cmdlines:
                        if self.marker not in (entry / "environ").read_bytes().split(b"\0"):
                            self.exclude.add(pid)
                            continue
                        cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                        if "execute_run" not in cmd and "spawn_main" not in cmd:
                            self.exclude.add(pid)  # CLI calls, the code server's own processes
                            continue
                        self.cmdlines[pid] = cmd[:200]
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
                    status = (entry / "status").read_text()
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.hwm_kb[pid] = int(line.split()[1])
                        elif line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            self.peak_total_rss_kb = max(self.peak_total_rss_kb, total)
            self._stop.wait(self.interval)


def _marker_pids(marker: str) -> set[int]:
    needle = marker.encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.add(int(entry.name))
    return pids


def cycle(
    pg: PostgresCluster,
    n: int,
    *,
    customers: int,
    orders: int,
    days: int,
    max_runs: int,
    dequeue_workers: int = 0,
) -> dict[str, Any]:
    import dagster as dg
    import duckdb

    with contextlib.ExitStack() as stack_ctx:
        tmp = Path(stack_ctx.enter_context(tempfile.TemporaryDirectory(prefix=f"multi_daemon_{n}_")))
        (tmp / "logs").mkdir()
        (tmp / "data").mkdir()
        home = tmp / "dagster_home"
        # every order in a closed 4-hour window (the tick syncs up to the last closed one), after the start
        now = window_start(datetime.now(UTC)) - timedelta(minutes=1)
        start = (now - timedelta(days=days)).date()
        names = [f"acct_{i:02d}" for i in range(n)]
        urls = {}
        for name in names:
            store = make_store(customers, orders, now, span_days=days)
            # a spec per account: it holds the cap's state (one shared spec = one cap for all)
            faults = FaultSpec.parse(f"latency={LATENCY},limit_rps={CAP}")
            server = ServerThread(create_app(store, app_keys=DEFAULT_APP_KEYS, faults=faults)).start()
            stack_ctx.callback(server.stop)
            urls[name] = server.url
        items = [
            {"name": name, "account": name.replace("_", ""), "base_url": urls[name],
             "duckdb_path": f"data/{name}.duckdb", "requests_per_second": CAP, "concurrency": 4,
             "start_date": start.isoformat()}
            for name in names
        ]  # fmt: skip
        (tmp / "integrations.yaml").write_text(yaml.safe_dump({"integrations": items}), encoding="utf-8")
        grpc_port = free_port()
        instance_cfg = write_instance(home, max_concurrent_runs=max_runs, dequeue_workers=dequeue_workers)
        coordinator = instance_cfg["run_coordinator"]["config"]
        workspace = write_workspace(tmp / "workspace.yaml", grpc_port)
        pg_env = pg.env(pg.create_database(f"bench_{n}_{int(time.time())}"))
        env = base_env(tmp, pg_env, home)
        env.update(
            {
                "VTEX_PIPELINE_INTEGRATIONS": str(tmp / "integrations.yaml"),
                "VTEX_PIPELINE_SYNC_CRON": "* * * * *",
                "VTEX_PIPELINE_START_DATE": start.isoformat(),
                "VTEX_APP_KEY": APP_KEY,
                "VTEX_APP_TOKEN": APP_TOKEN,
            }
        )
        marker = f"VTEX_TEST_MARKER={tmp}"
        procs = Processes(tmp / "logs", marker=marker)
        stack_ctx.callback(procs.stop_all)
        old_env = {k: os.environ.get(k) for k in pg_env}
        os.environ.update(pg_env)  # this process reads the same instance
        stack_ctx.callback(lambda: [os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
                                    for k, v in old_env.items()])  # fmt: skip
        try:
            load0 = time.monotonic()
            start_code_server_and_daemon(procs, env, tmp, grpc_port, workspace)
            code_server_ready = time.monotonic() - load0
            sampler = stack_ctx.enter_context(RunWorkerSampler(marker, _marker_pids(marker) | {os.getpid()}))
            run_cli(
                [str(BIN / "dagster"), "schedule", "start", "--start-all", "-w", str(workspace)], env, tmp
            )
            instance = stack_ctx.enter_context(dg.DagsterInstance.from_config(str(home)))

            def first_runs() -> dict[str, Any]:
                procs.check_alive()
                out = {}
                for r in instance.get_run_records():
                    name = r.dagster_run.job_name.removesuffix("_raw_sync")
                    if name in names and (name not in out or r.create_timestamp < out[name].create_timestamp):
                        out[name] = r
                return out if len(out) == n else {}

            wait("one run per account from the first tick", first_runs, 240, 1)
            wipe = subprocess.run([str(BIN / "dagster"), "schedule", "wipe"], input="DELETE\n", env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
            if wipe.returncode != 0:
                raise RuntimeError(f"dagster schedule wipe: {wipe.stdout}\n{wipe.stderr}")
            terminal = {
                dg.DagsterRunStatus.SUCCESS,
                dg.DagsterRunStatus.FAILURE,
                dg.DagsterRunStatus.CANCELED,
            }

            def finished() -> dict[str, Any]:
                recs = {
                    k: instance.get_run_record_by_id(r.dagster_run.run_id) for k, r in first_runs().items()
                }
                return recs if all(r.dagster_run.status in terminal for r in recs.values()) else {}

            recs = wait("the cycle's runs to finish", finished, 1800, 1)
            time.sleep(0.5)  # the sampler's last look at exiting workers
        except BaseException:
            print(procs.dump())
            raise
        failed = [
            r.dagster_run.run_id for r in recs.values() if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
        ]
        created = [r.create_timestamp.timestamp() for r in recs.values()]
        ends = [r.end_time for r in recs.values()]
        starts = [r.start_time for r in recs.values()]
        t0 = min(created)
        timeline = sorted(
            (
                [round(r.create_timestamp.timestamp() - t0, 1)]
                + [round(t - t0, 1) if t else None for t in _run_marks(instance, r.dagster_run.run_id)]
                + [round(r.end_time - t0, 1)]
                for r in recs.values()
            ),
            key=lambda row: row[0],
        )
        windows = [w for r in instance.get_runs() for w in step_windows(instance, r)]
        overlaps = pool_overlaps(windows)
        procs.stop("daemon")
        procs.stop("code_server")
        stored = 0
        for name in names:
            with duckdb.connect(str(tmp / "data" / f"{name}.duckdb"), read_only=True) as conn:
                stored += conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0]
        cpu = sum(sampler.cpu.values())
        return {
            "accounts": n,
            "max_concurrent_runs": max_runs,
            "dequeue_workers": (
                coordinator.get("dequeue_num_workers", 1)
                if coordinator.get("dequeue_use_threads")
                else "serial"
            ),
            "orders_per_account": orders,
            "orders_stored": stored,
            "failed_runs": failed,
            "cycle_wall_s": round(max(ends) - min(created), 1),
            "queue_to_last_start_s": round(max(starts) - min(created), 1),
            "slowest_run_s": round(max(e - s for s, e in zip(starts, ends, strict=True)), 1),
            "last_created_s": round(max(created) - min(created), 1),
            "timeline_created_launched_started_ended": timeline,
            "run_workers_seen": len(sampler.cpu),
            "run_cpu_s": round(cpu, 1),
            "cpu_ms_per_order": round(1000 * cpu / stored, 2) if stored else None,
            "peak_worker_rss_mb": round(max(sampler.hwm_kb.values(), default=0) / 1024),
            "peak_workers_rss_total_mb": round(sampler.peak_total_rss_kb / 1024),
            "duckdb_overlaps": len(overlaps),
            "steps_checked": len(windows),
            "code_server_ready_s": round(code_server_ready, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }


def _run_marks(instance, run_id: str) -> list[float | None]:
    """When the coordinator launched the run (RUN_STARTING) and when its process began executing (RUN_START)."""
    import dagster as dg

    wanted = [dg.DagsterEventType.RUN_STARTING, dg.DagsterEventType.RUN_START]
    seen: dict[Any, float] = {}
    for e in instance.all_logs(run_id, of_type=set(wanted)):
        seen.setdefault(e.dagster_event.event_type, e.timestamp)
    return [seen.get(t) for t in wanted]


def run(
    accounts: list[int], *, customers: int, orders: int, days: int, max_runs: int, dequeue_workers: int = 0
) -> dict[str, Any]:
    results = []
    with throwaway_postgres() as pg:
        for n in accounts:
            r = cycle(
                pg, n, customers=customers, orders=orders, days=days, max_runs=max_runs,
                dequeue_workers=dequeue_workers,
            )  # fmt: skip
            print(json.dumps(r), flush=True)
            results.append(r)
    by_n = {r["accounts"]: r for r in results}
    ratio = None
    if 1 in by_n and max(by_n) > 1:
        ratio = round(by_n[max(by_n)]["cycle_wall_s"] / by_n[1]["cycle_wall_s"], 2)
    return {
        "storage": "postgresql",
        "driven_by": "schedules (per-minute cron), QueuedRunCoordinator, DefaultRunLauncher via a code server",
        "latency_s": LATENCY,
        "cap_rps_per_account": CAP,
        "cores": os.cpu_count(),
        "cycle_ratio_max_n_over_1": ratio,
        "results": results,
    }


def figures(scale: float) -> list[dict[str, Any]]:
    """For benchmarks/run.py: N = 1, 4 and 16, a row per N (the target: cycle(N) <= 2 x cycle(1)), then the
    CPU per order, peak memory and DuckDB overlaps of the 16-account cycle."""
    del scale  # small stores whatever the scale: the figure is the daemon's, not the data's
    r = run([1, 4, 16], customers=100, orders=300, days=3, max_runs=16)
    by_n = {x["accounts"]: x for x in r["results"]}
    one, many = by_n[1], by_n[16]
    rows: list[dict[str, Any]] = []
    for n, x in sorted(by_n.items()):
        note = (f"{CAP} req/s cap per account, {LATENCY * 1000:.0f} ms latency, {x['orders_stored']} orders; "
                f"CPU {x['cpu_ms_per_order']} ms/order, peak worker {x['peak_worker_rss_mb']} MB, "
                f"all workers at once {x['peak_workers_rss_total_mb']} MB, DuckDB overlaps {x['duckdb_overlaps']}")  # fmt: skip
        base = None if n == 1 else one["cycle_wall_s"]  # N = 1 is the baseline of the others
        rows.append({"name": f"daemon: cycle wall, {n} account" + ("s" if n > 1 else ""),
                     "value": x["cycle_wall_s"], "unit": "s", "baseline": base,
                     "target": None if base is None else round(2 * base, 1), "op": None if base is None else "<=",
                     "note": note})  # fmt: skip
    rows += [
        {"name": "daemon: CPU per order, 16 accounts", "value": many["cpu_ms_per_order"], "unit": "ms",
         "baseline": one["cpu_ms_per_order"], "target": None, "op": None,
         "note": "utime+stime of the run workers over the orders stored; baseline: 1 account"},
        {"name": "daemon: peak run worker memory, 16 accounts", "value": many["peak_worker_rss_mb"], "unit": "MB",
         "baseline": one["peak_worker_rss_mb"], "target": None, "op": None,
         "note": f"largest VmHWM of one run worker; all workers at once {many['peak_workers_rss_total_mb']} MB"},
        {"name": "daemon: two writers of one DuckDB file", "value": sum(x["duckdb_overlaps"] for x in by_n.values()),
         "unit": "", "baseline": None, "target": 0, "op": "<=",
         "note": f"step windows per pool duckdb_<name>, N = 1, 4, 16: {sum(x['steps_checked'] for x in by_n.values())} steps"},
    ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--customers", type=int, default=100)
    ap.add_argument("--orders", type=int, default=300, help="per account, all in the last --days days")
    ap.add_argument("--days", type=int, default=3, help="start date this many days back")
    ap.add_argument("--max-concurrent-runs", type=int, default=16, help="the host cap (instance run limit)")
    ap.add_argument("--dequeue-workers", type=int, default=0,
                    help="launch queued runs from this many threads, -1: one after the other "
                         "(0: deploy/dagster.yaml as is, 8 threads)")  # fmt: skip
    args = ap.parse_args(argv)
    out = run(args.accounts, customers=args.customers, orders=args.orders, days=args.days,
              max_runs=args.max_concurrent_runs, dequeue_workers=args.dequeue_workers)  # fmt: skip
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
