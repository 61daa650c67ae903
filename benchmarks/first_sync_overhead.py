"""Orchestration overhead of a first sync: two years of a small store through `vtex-pipeline run`'s code
path (`vtex_pipeline.runner.run_integration`: the raw sync job over every day partition, then the
profile job), on a persistent SQLite instance and on a PostgreSQL one.

The store is small on purpose (~161 customers, 348 orders over two years, a served simulator at 1,000
requests/s): what is left once the time inside VTEX calls is taken out is what Dagster and the
pipeline's own work cost — the part that grows with the number of partitions, not with the data.

    .venv/bin/python -m benchmarks.first_sync_overhead                 # both instances, JSON on stdout
    .venv/bin/python -m benchmarks.first_sync_overhead --only sqlite

Figures per instance:
- `wall_seconds`: `run_integration` (both runs), in a fresh process (imports of the definitions included);
- `vtex_seconds`: wall time during which at least one VTEX HTTP call was in flight (calls overlap: the
  detail fetches run concurrently). `RequestStats` (vtex/http.py) counts requests, retries and the
  rate-limit wait but keeps no request time, so `VtexClient._send` is wrapped here (pacing, retries and
  the simulator's own handling count as VTEX time, as a remote API's would);
- `overhead_seconds` = wall − VTEX: orchestration (run and event bookkeeping, per-partition
  materializations, pool slots) plus DuckDB writes and the profile SQL;
- per run: seconds from the instance's run stats, and the number of events the raw run stored.
Each instance runs in its own process and its own temp folder (DAGSTER_HOME, DuckDB file), with
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true as the command line and the deployment set it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.run import _json_tail

CUSTOMERS, ORDERS, SPAN_DAYS, SEED = 161, 348, 730, 7
APP_KEY, APP_TOKEN = "vtexappkey-bench-FIRST", "bench-token-not-a-secret"
SQLITE_TARGET_SECONDS = 60
ROOT = Path(__file__).resolve().parents[1]
PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


class ApiClock:
    """Time with at least one VTEX call in flight (`busy`), and the sum over calls (`summed`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._busy_since = 0.0
        self.busy = 0.0
        self.summed = 0.0
        self.calls = 0

    def enter(self) -> float:
        now = time.perf_counter()
        with self._lock:
            if self._in_flight == 0:
                self._busy_since = now
            self._in_flight += 1
        return now

    def leave(self, started: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self._in_flight -= 1
            self.calls += 1
            self.summed += now - started
            if self._in_flight == 0:
                self.busy += now - self._busy_since


@contextmanager
def vtex_timed() -> Iterator[ApiClock]:
    """Time every VtexClient call (one `_send` = pacing + every attempt of one logical call)."""
    from vtex_pipeline.vtex.http import VtexClient

    clock = ApiClock()
    original = VtexClient._send

    def timed(self, *args: Any, **kwargs: Any):
        started = clock.enter()
        try:
            return original(self, *args, **kwargs)
        finally:
            clock.leave(started)

    VtexClient._send = timed  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        VtexClient._send = original  # type: ignore[method-assign]


@contextmanager
def timed_functions(targets: dict[str, tuple[str, str]]) -> Iterator[dict[str, float]]:
    """Seconds inside module-level functions the assets call, by label: {label: (module, name)}."""
    import importlib

    seconds = dict.fromkeys(targets, 0.0)
    lock = threading.Lock()
    originals = []
    for label, (module_name, attr) in targets.items():
        module = importlib.import_module(module_name)
        original = getattr(module, attr)

        def timed(*args: Any, _f=original, _label=label, **kwargs: Any):
            t0 = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                with lock:
                    seconds[_label] += time.perf_counter() - t0

        setattr(module, attr, timed)
        originals.append((module, attr, original))
    try:
        yield seconds
    finally:
        for module, attr, original in originals:
            setattr(module, attr, original)


# what the assets spend outside Dagster: the sync passes (their VTEX calls included) and the profile SQL
PIPELINE_WORK = {
    "sync_customers": ("vtex_pipeline.assets.raw", "sync_customers"),
    "sync_orders": ("vtex_pipeline.assets.raw", "sync_orders"),
    "sync_catalog": ("vtex_pipeline.assets.raw", "sync_catalog"),
    "compute_profile": ("vtex_pipeline.assets.profile", "compute_profile"),
}


def _serve_store(stack: ExitStack) -> tuple[str, dict[str, Any]]:
    """The generated store on 127.0.0.1 (as `vtex-pipeline demo`: the clock stands still meanwhile)."""
    from vtex_pipeline.simulators.generator import generate_store
    from vtex_pipeline.simulators.server import ServerThread
    from vtex_pipeline.simulators.store import load_fixture
    from vtex_pipeline.simulators.vtex_server import create_app

    started = datetime.now(UTC)
    fixture = generate_store(customers=CUSTOMERS, orders=ORDERS, seed=SEED, now=started, span_days=SPAN_DAYS)
    store = load_fixture(fixture)
    app = create_app(
        store, app_keys={APP_KEY: {"token": APP_TOKEN, "permissions": ["*"]}}, now=lambda: started
    )
    server = stack.enter_context(ServerThread(app))
    return server.url, {"customers": len(store.clients), "orders": len(store.orders), "span_days": SPAN_DAYS}


def _sqlite_instance(stack: ExitStack, home: Path):
    import dagster as dg

    try:
        from vtex_pipeline.instance import packaged_instance_yaml

        config = packaged_instance_yaml()  # what `vtex-pipeline run` writes into a new DAGSTER_HOME
    except (ImportError, OSError):
        config = "concurrency:\n  pools:\n    default_limit: 1\n    granularity: op\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(config, encoding="utf-8")
    return stack.enter_context(
        dg.DagsterInstance.from_config(str(home))
    ), "SQLite (vtex_pipeline's local dagster.yaml)"


def _postgres_instance(stack: ExitStack, home: Path):
    import dagster as dg

    from vtex_pipeline_tests.postgres import throwaway_postgres

    cluster = stack.enter_context(throwaway_postgres("bench"))
    os.environ.update(cluster.env())
    (home / "dagster.yaml").write_text(
        (ROOT / "deploy" / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
    return instance, f"PostgreSQL {cluster.port} (deploy/dagster.yaml)"


def measure(kind: str) -> dict[str, Any]:
    """One first sync on a fresh instance of `kind` ("sqlite" or "postgres") in this process."""
    with tempfile.TemporaryDirectory(prefix=f"first_sync_{kind}_") as tmp, ExitStack() as stack:
        tmp_path = Path(tmp)
        home = tmp_path / "dagster_home"
        home.mkdir()
        os.environ.setdefault(PLANNED_EVENTS_ENV, "true")
        os.environ.update(
            {"VTEX_PIPELINE_HOME": str(tmp_path), "DAGSTER_HOME": str(home), "VTEX_APP_KEY": APP_KEY,
             "VTEX_APP_TOKEN": APP_TOKEN}
        )  # fmt: skip
        for var in ("VTEX_PIPELINE_INTEGRATIONS", "ICOMM_PROFILE_KEY"):
            os.environ.pop(var, None)
        url, store = _serve_store(stack)
        instance, label = (_postgres_instance if kind == "postgres" else _sqlite_instance)(stack, home)

        from vtex_pipeline.config import IntegrationConfig, default_start_date
        from vtex_pipeline.runner import run_integration

        as_of = datetime.now(UTC).date()
        cfg = IntegrationConfig(
            account="benchstore", base_url=url, duckdb_path=str(tmp_path / "vtex.duckdb"),
            requests_per_second=1000, concurrency=8, start_date=default_start_date(as_of),
        )  # fmt: skip
        with vtex_timed() as clock, timed_functions(PIPELINE_WORK) as work:
            t0 = time.perf_counter()
            outcome = run_integration(cfg, as_of, instance=instance, log_level="WARNING")
            wall = time.perf_counter() - t0
        runs = {}
        for name, run_id in (("raw_sync", outcome.run_id), ("profile", outcome.profile_run_id)):
            if run_id is None:
                continue
            stats = instance.get_run_stats(run_id)
            logs = instance.all_logs(run_id)
            kinds = Counter(e.dagster_event.event_type_value for e in logs if e.dagster_event is not None)
            runs[name] = {
                "seconds": round((stats.end_time or 0) - (stats.start_time or 0), 2),
                "events": len(logs),
                "top_event_types": dict(kinds.most_common(4)),
            }
        in_pipeline = sum(work.values())
        first, last = outcome.partition_range or (None, None)
        days = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1 if first else 0
        return {
            "instance": label,
            "success": outcome.success,
            "error": outcome.error,
            "store": store,
            "partition_range": [first, last],
            "day_partitions": days,
            "wall_seconds": round(wall, 2),
            "vtex_seconds": round(clock.busy, 2),
            "vtex_call_seconds_summed": round(clock.summed, 2),
            "vtex_calls": clock.calls,
            "overhead_seconds": round(wall - clock.busy, 2),
            # the overhead split: the pipeline's own work (sync passes without their VTEX time, profile
            # SQL) and the rest (Dagster: runs, events, materializations, pool slots; asset metadata)
            "pipeline_own_seconds": round(in_pipeline - clock.busy, 2),
            "outside_pipeline_seconds": round(wall - in_pipeline, 2),
            "seconds_in": {k: round(v, 2) for k, v in work.items()},
            "runs": runs,
            PLANNED_EVENTS_ENV: os.environ.get(PLANNED_EVENTS_ENV),
        }


def run(kinds: list[str]) -> dict[str, Any]:
    """Each instance in a fresh process (same imports to pay, no warm caches), results side by side."""
    out: dict[str, Any] = {}
    for kind in kinds:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.first_sync_overhead", "--one", kind],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            out[kind] = {"success": False, "error": (proc.stderr or proc.stdout).strip()[-2000:]}
            continue
        out[kind] = _json_tail(proc.stdout)
    sqlite = out.get("sqlite", {})
    if "wall_seconds" in sqlite:
        out["target"] = {
            "sqlite_wall_seconds_max": SQLITE_TARGET_SECONDS,
            "met": sqlite["success"] and sqlite["wall_seconds"] <= SQLITE_TARGET_SECONDS,
        }
    return out


def figures(result: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows in benchmarks/run.py's format (name, value, unit, baseline, target, op, note)."""
    result = result or run(["sqlite", "postgres"])
    rows = []
    for kind, title in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        r = result.get(kind)
        if not r or "skipped" in r:
            continue
        if "wall_seconds" not in r:
            rows.append({"name": f"first sync ({title}): FAILED", "value": None, "unit": "", "target": None,
                         "op": None, "note": str(r.get("error"))[:300]})  # fmt: skip
            continue
        note = (f"{r['store']['customers']} customers, {r['store']['orders']} orders, {r['day_partitions']} day "
                f"partitions; VTEX {r['vtex_seconds']} s ({r['vtex_calls']} calls); runs {r['runs']}")  # fmt: skip
        rows.append({"name": f"first sync two years ({title}): wall", "value": r["wall_seconds"], "unit": "s",
                     "baseline": None, "target": SQLITE_TARGET_SECONDS if kind == "sqlite" else None,
                     "op": "<=" if kind == "sqlite" else None, "note": note})  # fmt: skip
        rows.append({"name": f"first sync two years ({title}): orchestration overhead", "unit": "s",
                     "value": r["overhead_seconds"], "baseline": None, "target": None, "op": None,
                     "note": "wall - time with a VTEX call in flight"})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only", choices=["sqlite", "postgres"], action="append", help="one instance (repeatable)"
    )
    ap.add_argument("--one", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.one:
        sys.path.insert(0, str(ROOT))
        from vtex_pipeline_tests.postgres import PostgresUnavailable

        try:
            result = measure(args.one)
        except PostgresUnavailable as exc:
            result = {"skipped": str(exc)}
        print(json.dumps(result, indent=2, default=str))
        return 0
    result = run(args.only or ["sqlite", "postgres"])
    print(json.dumps(result, indent=2, default=str))
    return 0 if all(r.get("success") or "skipped" in r for k, r in result.items() if k != "target") else 1


if __name__ == "__main__":
    raise SystemExit(main())
