"""What N configured accounts cost Dagster before any run: definitions load, the code location's snapshot
(what the webserver and the daemon fetch from the code server), and one evaluation of every schedule
and sensor (what the daemon does on each tick). The figures behind docs/scaling.md "1,000 accounts".

    .venv/bin/python -m benchmarks.definitions_scale --accounts 1000

Schedules and sensors are evaluated in this process against a fresh local (SQLite) instance with no
runs: the cost of our functions plus their instance queries, times N. The real daemon adds a gRPC call
to the code server per evaluation and PostgreSQL round trips instead of SQLite ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _progress(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line} (RSS {_rss_mb():.0f} MB)", file=sys.stderr, flush=True)


def measure(n: int, sample: int) -> dict[str, Any]:
    import dagster as dg
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    rss0 = _rss_mb()
    from vtex_pipeline.config import IntegrationConfig
    from vtex_pipeline.definitions import build_definitions

    start = date.today() - timedelta(days=3)
    with tempfile.TemporaryDirectory(prefix="defs_scale_") as tmp:
        configs = [
            IntegrationConfig(name=f"acct_{i:04d}", account=f"acct{i}", duckdb_path=f"{tmp}/acct_{i:04d}.duckdb",
                              start_date=start)
            for i in range(n)
        ]  # fmt: skip
        rss_imports = _rss_mb()
        t0 = time.perf_counter()
        defs = build_definitions(configs)
        t_build = time.perf_counter() - t0
        _progress(f"build_definitions {t_build:.1f} s")
        t0 = time.perf_counter()
        repo = defs.get_repository_def()
        jobs = repo.get_all_jobs()
        t_resolve = time.perf_counter() - t0
        _progress(f"resolve jobs {t_resolve:.1f} s")
        rss_defs = _rss_mb()
        t0 = time.perf_counter()
        snap = RepositorySnap.from_def(repo)
        payload = serialize_value(snap)
        t_snap = time.perf_counter() - t0
        _progress(f"snapshot {t_snap:.1f} s, {len(payload) / 1e6:.0f} MB")
        rss_snap = _rss_mb()

        schedules = list(repo.schedule_defs)
        sensors = list(repo.sensor_defs)
        step = max(1, len(schedules) // sample)
        with dg.instance_for_test(temp_dir=tmp) as instance:
            tick = datetime.now(UTC).replace(minute=10, second=0, microsecond=0)
            t0 = time.perf_counter()
            evaluated = 0
            for sched in schedules[::step]:
                with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as ctx:
                    list(sched.evaluate_tick(ctx).run_requests or [])
                evaluated += 1
            t_sched = (time.perf_counter() - t0) / evaluated
            t0 = time.perf_counter()
            sensed = 0
            for sensor in sensors[::step]:
                with dg.build_sensor_context(instance=instance) as ctx:
                    sensor.evaluate_tick(ctx)
                sensed += 1
            t_sensor = (time.perf_counter() - t0) / sensed
    return {
        "accounts": n,
        "assets": len(list(repo.assets_defs_by_key)),
        "jobs": len(jobs),
        "schedules": len(schedules),
        "sensors": len(sensors),
        "build_definitions_s": round(t_build, 2),
        "resolve_jobs_s": round(t_resolve, 2),
        "load_total_s": round(t_build + t_resolve, 2),
        "snapshot_s": round(t_snap, 2),
        "snapshot_mb": round(len(payload) / 1e6, 1),
        "rss_imports_mb": round(rss_imports - rss0),
        "rss_definitions_mb": round(rss_defs - rss_imports),
        "rss_after_snapshot_mb": round(rss_snap - rss_imports),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "schedule_eval_ms": round(1000 * t_sched, 2),
        "sensor_eval_ms": round(1000 * t_sensor, 2),
        "all_schedules_one_tick_s": round(t_sched * len(schedules), 1),
        "all_sensors_one_tick_s": round(t_sensor * len(sensors), 1),
        "evaluated_sample": evaluated,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument(
        "--sample", type=int, default=100, help="schedules/sensors evaluated (the rest extrapolated)"
    )
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.accounts, args.sample), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
