"""Run every benchmark at a scale, print one table and write `benchmarks/results.json`.

    .venv/bin/python -m benchmarks.run --scale 1.0     # make bench
    .venv/bin/python -m benchmarks.run --scale 0.1     # make bench-small (-> results-scale-0.1.json)

Scale 1.0 is the issue's store: 1,000,000 customers and 5,000,000 orders (about 13M items). The
pandas baseline at full scale would need well over 10 GB and ~10 minutes, so above scale 0.2 it runs
on a sample store of 0.2 (same generator) and its time and memory are extrapolated linearly to the
full size; the SQL is measured on that sample too, so the ratio on equal data is printed alongside.
Every figure carries the 1-minute load average when it was taken: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).with_name("results.json")
PANDAS_MAX_SCALE = 0.2
Figure = dict[str, Any]


def _py(*args: str) -> str:
    """Run `python -m ...` in a fresh process (its own peak RSS) and return stdout."""
    out = subprocess.run([sys.executable, "-m", *args], check=True, capture_output=True, text=True)
    return out.stdout


def _json_tail(text: str) -> dict[str, Any]:
    """The JSON document at the end of a benchmark's output (after any progress lines)."""
    start = text.index("{")
    while True:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.index("{", start + 1)


def generate(db: Path, scale: float) -> dict[str, Any]:
    customers, orders = int(1_000_000 * scale), int(5_000_000 * scale)
    return _json_tail(
        _py("benchmarks.profile_scale", "--generate-only", "--db", str(db),
            "--customers", str(customers), "--orders", str(orders))
    )  # fmt: skip


def sql_profile(db: Path) -> dict[str, Any]:
    return _json_tail(_py("benchmarks.profile_scale", "--reuse", "--db", str(db)))


def pandas_profile(db: Path, sample: int) -> dict[str, Any]:
    return _json_tail(
        _py("benchmarks.pandas_baseline", "--db", str(db), "--as-of", date.today().isoformat(),
            "--compare", str(sample))
    )  # fmt: skip


def profile_figures(db: Path, scale: float, tmp: Path) -> list[Figure]:
    """SQL profile at `scale`; pandas at min(scale, 0.2), extrapolated; identity check on a sample."""
    sql = sql_profile(db)
    p_scale = min(scale, PANDAS_MAX_SCALE)
    if p_scale < scale:
        sample_db = tmp / "pandas_sample.duckdb"
        generate(sample_db, p_scale)
        sql_small = sql_profile(sample_db)
    else:
        sample_db, sql_small = db, sql
    pd_run = pandas_profile(sample_db, 2_000)
    factor = scale / p_scale
    pd_seconds = pd_run["seconds"] * factor
    pd_gb = pd_run["peak_rss_mb"] * factor / 1024
    how = (
        "measured"
        if factor == 1
        else f"measured at scale {p_scale} ({pd_run['seconds']} s, "
        f"{pd_run['peak_rss_mb']} MB) x {factor:g}, linear"
    )
    check = pd_run["check"]
    sql_s, sql_gb = sql["seconds_total"], sql["peak_rss_mb"] / 1024
    slowest = max(sql["steps"], key=lambda k: sql["steps"][k])
    same_data = round(pd_run["seconds"] / sql_small["seconds_total"], 1)
    return [
        {"name": "profile: full customer_profile", "value": sql_s, "unit": "s", "baseline": round(pd_seconds, 1),
         "target": 15, "op": "<=",
         "note": f"{sql['customers']:,} customers, {sql['purchases']:,} purchases; slowest step {slowest} "
                 f"{sql['steps'][slowest]} s; baseline = pandas ({how})"},
        {"name": "profile: peak memory", "value": round(sql_gb, 2), "unit": "GB", "baseline": round(pd_gb, 2),
         "target": 4, "op": "<=", "note": "ru_maxrss of the computing process; baseline = pandas"},
        {"name": "profile: speed-up over pandas", "value": round(pd_seconds / sql_s, 1), "unit": "x",
         "baseline": None, "target": 10, "op": ">=",
         "note": f"on the same sample store: {same_data}x ({pd_run['seconds']} s vs {sql_small['seconds_total']} s)"},
        {"name": "profile: SQL = pandas on sampled customers", "value": sum(check["mismatched_columns"].values()),
         "unit": "mismatches", "baseline": None, "target": 0, "op": "<=",
         "note": f"{check['sampled']:,} customers, every profile column compared"
                 + (f"; {check['examples'][:2]}" if check["examples"] else "")},
    ]  # fmt: skip


def prediction_figures(db: Path, scale: float) -> list[Figure]:
    """compute_predictions (summary SQL, fits, scoring, back-test) on purchases drawn from the models, and
    on the generated store, whose generator has no dropout: there the fits are refused (at the bounds)."""
    customers = str(int(1_000_000 * scale))
    m = _json_tail(_py("benchmarks.predictions_scale", "--model-store", "--customers", customers))
    g = _json_tail(_py("benchmarks.predictions_scale", "--db", str(db)))
    return [
        {"name": "predictions: fit + score", "value": m["fit_and_score_s"], "unit": "s", "baseline": None,
         "target": 10, "op": "<=",
         "note": f"{m['buyers']:,} buyers ({m['repeat_buyers']:,} repeat), {m['purchases']:,} purchase rows drawn "
                 f"from MBG/NBD + Gamma-Gamma, {m['status']}; with the 90-day back-test {m['with_backtest_s']} s "
                 f"(back-test off by {m['backtest']['share']:.1%})"},
        {"name": "predictions: extra memory", "value": round(m["extra_rss_mb"] / 1024, 2), "unit": "GB",
         "baseline": None, "target": 1, "op": "<=",
         "note": "peak RSS during compute_predictions minus RSS before (summary SQL, fits, scores, back-test)"},
        {"name": "predictions: on the generated store", "value": g["with_backtest_s"], "unit": "s",
         "baseline": None, "target": None, "op": None,
         "note": f"{g['buyers']:,} buyers, {g['status']} ({(g['reason'] or '')[:160]}); "
                 f"extra {g['extra_rss_mb']} MB"},
    ]  # fmt: skip


def _met(f: Figure) -> bool | None:
    if f.get("target") is None or f.get("op") is None:
        return None
    return f["value"] <= f["target"] if f["op"] == "<=" else f["value"] >= f["target"]


def _machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
            "system": platform.platform(), "python": platform.python_version()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", nargs="*", default=None,
                    help="subset: profile profile_old_new predictions sync incremental export multi multi_daemon first_sync feed")  # fmt: skip
    ap.add_argument("--db", help="reuse this generated store instead of a scratch one (it gets modified)")
    args = ap.parse_args(argv)
    want = set(
        args.only
        or [
            "profile",
            "profile_old_new",
            "predictions",
            "sync",
            "incremental",
            "export",
            "multi",
            "multi_daemon",
            "first_sync",
            "feed",
        ]
    )
    console = Console(width=max(Console().width, 160))
    figures: list[Figure] = []
    started = datetime.now(UTC)

    def collect(label: str, fn: Callable[[], list[Figure]]) -> None:
        console.log(f"{label} ... (load {os.getloadavg()[0]:.2f})")
        t0 = time.perf_counter()
        try:
            got = fn()
        except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others
            console.log(f"[red]{label} failed: {exc!r}")
            got = [{"name": f"{label}: FAILED", "value": None, "unit": "", "target": None, "op": None,
                    "note": repr(exc)[:300]}]  # fmt: skip
        load = round(os.getloadavg()[0], 2)
        for f in got:
            f["load_average"] = load
        figures.extend(got)
        console.log(f"{label} done in {time.perf_counter() - t0:.0f} s")

    from benchmarks import export_delta, first_sync_overhead, incremental, multi_account, sync_throughput

    with tempfile.TemporaryDirectory(prefix="bench_") as tmpdir:
        tmp = Path(tmpdir)
        db = Path(args.db) if args.db else tmp / "store.duckdb"
        if want & {"profile", "profile_old_new", "predictions", "incremental", "export"} and not args.db:
            console.log(f"generating the store at scale {args.scale} ...")
            console.log(generate(db, args.scale))
        if "profile" in want:
            collect("profile", lambda: profile_figures(db, args.scale, tmp))
        if "profile_old_new" in want:  # before the benchmarks that modify the store
            from benchmarks import profile_old_new

            collect("profile old vs new", lambda: profile_old_new.figures(db))
        if "predictions" in want:
            collect("predictions", lambda: prediction_figures(db, args.scale))
        if "sync" in want:
            collect("sync", lambda: sync_throughput.figures(args.scale))
        if "incremental" in want:
            collect("incremental", lambda: incremental.figures(str(db), args.scale))
        if "export" in want:
            collect("export", lambda: export_delta.figures(str(db)))
        if "multi" in want:
            collect("multi-account", lambda: multi_account.figures(args.scale))
        if "multi_daemon" in want:  # N accounts synced by dagster-daemon on PostgreSQL (minutes)
            from benchmarks import multi_account_daemon

            collect("multi-account daemon", lambda: multi_account_daemon.figures(args.scale))
        if "first_sync" in want:  # the store of the deployment issue, whatever the scale
            collect("first sync", first_sync_overhead.figures)
        if "feed" in want:  # the Orders Feed path under the daemon, PostgreSQL then SQLite (minutes each)
            from benchmarks import feed_latency

            collect("orders feed", lambda: feed_latency.figures(args.scale))

    table = Table(title=f"vtex-pipeline benchmarks, scale {args.scale:g}")
    for col in ("figure", "value", "unit", "baseline", "ratio", "target", "met", "load"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    rows = []
    for f in figures:
        met = _met(f)
        value, base = f.get("value"), f.get("baseline")
        ratio = round(value / base, 3) if isinstance(value, int | float) and base else None
        target = f"{f['op']} {f['target']}" if f.get("target") is not None else ""
        mark = {True: "[green]yes", False: "[red]no", None: ""}[met]
        table.add_row(f["name"], str(value), f.get("unit", ""), "" if base is None else str(base),
                      "" if ratio is None else f"{ratio:g}", target, mark, str(f.get("load_average", "")))  # fmt: skip
        rows.append({"name": f["name"], "value": value, "unit": f.get("unit"), "baseline": base, "ratio": ratio,
                     "target": f.get("target"), "target_op": f.get("op"), "met": met,
                     "load_average": f.get("load_average"), "scale": args.scale,
                     "note": f.get("note", "")})  # fmt: skip
    console.print(table)
    for f in figures:
        if f.get("note"):
            console.print(f"[dim]{f['name']}: {f['note']}")
    console.print(f"machine: {_machine()}; started {started.isoformat(timespec='seconds')}")
    # make bench-small must not overwrite the full-size record
    results = RESULTS if args.scale == 1.0 else RESULTS.with_name(f"results-scale-{args.scale:g}.json")
    if args.only and results.exists():  # a subset updates its figures and keeps the others
        fresh = {r["name"] for r in rows}
        kept = [r for r in json.loads(results.read_text(encoding="utf-8")) if r["name"] not in fresh]
        rows = kept + rows
    results.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"wrote {results} (one object per figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
