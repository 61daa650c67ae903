"""`make chaos`: every fault of issue #7 against fresh simulators and a fresh DuckDB file, compared with
a run that was never disturbed. One row per fault; exits non-zero when any row lost, duplicated or
changed a record, or leaked a secret.

Each scenario runs `vtex-pipeline run --as-of D` as a subprocess (so a crash is a real SIGKILL), with
the simulators served from this process on 127.0.0.1, then compares per-key row hashes of raw_orders,
raw_order_items, raw_customers, customer_profile (sync bookkeeping columns excluded) and the icomm
simulator's contact set with the reference run's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import requests
import yaml
from rich.console import Console
from rich.table import Table

from chaos.wrappers import ResetProxy, VtexChaos
from vtex_pipeline.instance import packaged_instance_yaml
from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.icomm_server import create_icomm_app
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import load_fixture
from vtex_pipeline.simulators.vtex_server import create_app

ROOT = Path(__file__).resolve().parent.parent
VTEX_KEY = "vtexappkey-chaos-K3Y-7f1c9e"
VTEX_TOKEN = "chaos-T0KEN-c0ffee-5ecret"
ICOMM_KEY = "icomm-chaos-K3Y-b4dc0de"
SECRETS = (VTEX_KEY, VTEX_TOKEN, ICOMM_KEY)
PROFILE = "chaos-profile"
# table -> (key expression, columns left out: sync bookkeeping that legitimately differs between runs)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "raw_orders": ("order_id", ("synced_at",)),
    "raw_order_items": ("order_id || '#' || item_index", ()),
    "raw_customers": ("customer_id", ("synced_at", "partition_key")),
    "customer_profile": ("customer_id", ()),
}

Rows = dict[str, list[tuple[str, int]]]  # table -> [(key, row hash)]


@dataclass
class RunResult:
    rc: int | None
    killed: bool
    seconds: float
    output: str


@dataclass
class Sandbox:
    """Fresh simulators, DuckDB file, DAGSTER_HOME and dry-run dir for one scenario."""

    name: str
    fixture: dict[str, Any]
    now: datetime
    vtex_faults: str = ""
    icomm_faults: str = ""
    blocked: set[str] = field(default_factory=set)
    reset_rate: float = 0.0
    scroll_idle_seconds: float = 1200
    config: dict[str, Any] = field(default_factory=dict)
    icomm_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"chaos-{self.name[:20].replace(' ', '_')}-"))
        self.chaos = VtexChaos(
            create_app(
                load_fixture(json.loads(json.dumps(self.fixture))),
                app_keys={VTEX_KEY: {"token": VTEX_TOKEN, "permissions": ["*"]}},
                faults=FaultSpec.parse(self.vtex_faults),
                now=lambda: self.now,
                scroll_idle_seconds=self.scroll_idle_seconds,
            )
        )
        self.vtex = ServerThread(self.chaos).start()
        self.proxy = ResetProxy(self.vtex.port, self.reset_rate, seed=5) if self.reset_rate else None
        self.icomm_app = create_icomm_app(
            {ICOMM_KEY},
            {PROFILE},
            str(self.dir / "icomm-received.jsonl"),
            self.icomm_faults,
            blocked_emails=self.blocked,
        )
        self.icomm = ServerThread(self.icomm_app).start()
        self.db = self.dir / "chaos.duckdb"
        self.home = self.dir / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text(packaged_instance_yaml(), encoding="utf-8")
        icomm = {
            "base_url": self.icomm.url,
            "profile_key": PROFILE,
            "batch_size": 100,
            "timeout": 10,
            "requests_per_second": 50,
            "backoff_base": 0.2,
            "backoff_max": 2,
            "dry_run_dir": str(self.dir / "icomm-dry-run"),
            **self.icomm_config,
        }
        integration = {
            "name": "vtex",
            "account": "chaosstore",
            "base_url": self.proxy.url if self.proxy else self.vtex.url,
            "duckdb_path": str(self.db),
            "start_date": (self.now.date() - timedelta(days=SPAN_DAYS + 1)).isoformat(),
            "requests_per_second": 500,
            "concurrency": 6,
            "request_timeout": 10,
            "sync_chunk_days": 3,
            "icomm": icomm,
            **self.config,
        }
        (self.dir / "integrations.yaml").write_text(yaml.safe_dump({"integrations": [integration]}))
        self.outputs: list[str] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "ICOMM_", "DAGSTER_"))}
        env.update(
            VTEX_PIPELINE_INTEGRATIONS=str(self.dir / "integrations.yaml"),
            VTEX_APP_KEY=VTEX_KEY,
            VTEX_APP_TOKEN=VTEX_TOKEN,
            ICOMM_API_KEY=ICOMM_KEY,
            DAGSTER_HOME=str(self.home),
            PYTHONUNBUFFERED="1",
        )
        return env

    def run(
        self,
        kill_when: Callable[[Sandbox], bool] | None = None,
        timeout: float = 420,
        options: tuple[str, ...] = (),
    ) -> RunResult:
        """One `vtex-pipeline [options] run`; SIGKILLed as soon as `kill_when(self)` holds."""
        as_of = self.now.date().isoformat()
        cmd = [sys.executable, "-m", "vtex_pipeline.cli", *options, "run", "--as-of", as_of]
        started = time.monotonic()
        with (self.dir / f"run-{len(self.outputs)}.log").open("w+") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
            killed = False
            try:
                while proc.poll() is None:
                    if kill_when is not None and not killed and kill_when(self):
                        os.kill(proc.pid, signal.SIGKILL)
                        killed = True
                    if time.monotonic() - started > timeout:
                        break
                    time.sleep(0.03)
            finally:  # timed out, or this process is interrupted: never leave the run behind
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            log.seek(0)
            output = log.read()
        self.outputs.append(output)
        return RunResult(proc.returncode, killed, time.monotonic() - started, output)

    def vtex_requests(self, template: str = "/api/oms/pvt/orders/{orderId}") -> int:
        stats = requests.get(f"{self.vtex.url}/_sim/stats", timeout=10).json()
        return int(stats["requests"].get(template, 0))

    def icomm_stats(self) -> dict[str, Any]:
        return requests.get(f"{self.icomm.url}/_sim/stats", timeout=10).json()

    def step_started(self, step: str) -> bool:
        """Has a Dagster step whose key contains `step` started? (read from the run's event log)"""
        for db in (self.home / "history" / "runs").glob("*.db"):
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
                    hit = conn.execute(
                        "SELECT 1 FROM event_logs WHERE dagster_event_type = 'STEP_START' AND step_key LIKE ?",
                        [f"%{step}%"],
                    ).fetchone()
            except sqlite3.Error:
                continue
            if hit:
                return True
        return False

    def snapshot(self) -> tuple[Rows, list[tuple[str, int]]]:
        rows: Rows = {}
        with duckdb.connect(str(self.db), read_only=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            for table, (key, exclude) in TABLES.items():
                cols = [
                    r[0]
                    for r in conn.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                        "ORDER BY ordinal_position",
                        [table],
                    ).fetchall()
                    if r[0] not in exclude
                ]
                collist = ", ".join(f'"{c}"' for c in cols)
                rows[table] = conn.execute(f"SELECT {key}, hash({collist}) FROM {table}").fetchall()
        contacts = requests.get(f"{self.icomm.url}/_sim/contacts", timeout=30).json()
        contact_rows = [
            (c["Email"], hash(json.dumps(sorted((f["Key"], f["Value"]) for f in c["CustomFields"]))))
            for c in contacts
        ]
        return rows, contact_rows

    def secrets_found(self) -> list[str]:
        """Where any secret shows: run output, any file written (bytes), any text column of DuckDB."""
        found = [f"output of run {i}" for i, out in enumerate(self.outputs) for s in SECRETS if s in out]
        for path in self.dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path.name}" for s in SECRETS if s.encode() in data]
        if self.db.exists():
            with duckdb.connect(str(self.db), read_only=True) as conn:
                cols = conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE data_type IN ('VARCHAR', 'JSON') OR data_type LIKE 'VARCHAR%'"
                ).fetchall()
                for table, col in cols:
                    for s in SECRETS:
                        n = conn.execute(
                            f'SELECT count(*) FROM "{table}" WHERE CAST("{col}" AS VARCHAR) LIKE ?',
                            [f"%{s}%"],
                        ).fetchone()[0]
                        if n:
                            found.append(f"{table}.{col}")
        return found

    def close(self) -> None:
        if self.proxy:
            self.proxy.close()
        self.vtex.stop()
        self.icomm.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Row:
    fault: str
    ci: bool
    runs: int = 0
    expected: int = 0
    loaded: int = 0
    lost: int = 0
    duplicated: int = 0
    differ: int = 0
    secrets: int = 0
    note: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.differ or self.secrets) and not self.note.startswith(
            "FAIL"
        )


def compare(ref: tuple[Rows, list], got: tuple[Rows, list], row: Row) -> None:
    """Lost: reference keys missing; duplicated: keys twice or unknown; differ: same key, other content."""
    pairs = [(ref[0][t], got[0][t]) for t in TABLES] + [(ref[1], got[1])]
    for want, have in pairs:
        want_by = dict(want)
        have_count = Counter(k for k, _ in have)
        have_by: dict[str, set[int]] = {}
        for k, h in have:
            have_by.setdefault(k, set()).add(h)
        row.expected += len(want)
        row.loaded += len(have)
        row.lost += sum(1 for k in want_by if k not in have_by)
        row.duplicated += sum(n - 1 for n in have_count.values()) + sum(
            1 for k in have_by if k not in want_by
        )
        row.differ += sum(1 for k, h in want_by.items() if k in have_by and have_by[k] != {h})


SPAN_DAYS = 20
Scenario = Callable[[Callable[..., Sandbox], Row], None]


def _ok(result: RunResult, row: Row, what: str = "run") -> None:
    row.runs += 1
    if result.rc != 0 and not result.killed:
        tail = result.output.strip().splitlines()[-1:] or [""]
        row.note = f"FAIL: {what} exited {result.rc}: {tail[0][:120]}"


def _runs(*specs: dict[str, Any], n: int = 1) -> Scenario:
    """A scenario that runs `n` times in a sandbox built with `specs` (merged)."""

    def scenario(make: Callable[..., Sandbox], row: Row) -> None:
        box = make(**{k: v for s in specs for k, v in s.items()})
        for _ in range(n):
            _ok(box.run(), row)
        _evidence(box, row)

    return scenario


def _evidence(box: Sandbox, row: Row) -> None:
    """Show that the fault really happened: retries and restarts the runs logged, resets the proxy made."""
    out = "".join(box.outputs)
    seen = []
    if n := out.count("retrying in"):
        seen.append(f"{n} retries")
    if n := out.count("scroll token expired"):
        seen.append(f"{n} scroll restarts")
    stats = requests.get(f"{box.vtex.url}/_sim/stats", timeout=10).json()
    for status in ("429", "503", "504"):
        if n := stats["responses"].get(status, 0):
            seen.append(f"{n} VTEX {status}")
    seen += [f"{n} {what}" for what, n in box.chaos.injected.items()]
    if box.proxy is not None:
        seen.append(f"{box.proxy.resets} resets")
    icomm = box.icomm_stats()
    if n := icomm.get("status_429", 0):
        seen.append(f"{n} icomm 429")
    lost = icomm.get("lost_responses", 0)
    if lost:
        seen.append(f"{lost} icomm answers lost")
    if seen and not row.note:
        row.note = ", ".join(seen)


def _detail_404(make: Callable[..., Sandbox], row: Row) -> None:
    box = make()
    ids = [o["orderId"] for o in box.fixture["orders"]][::97][:5]
    box.chaos.not_found = set(ids)
    _ok(box.run(), row, "faulted run")
    with duckdb.connect(str(box.db), read_only=True) as conn:
        rejected = {
            r[0]
            for r in conn.execute(
                "SELECT record_id FROM raw_rejected_records WHERE source = 'orders' AND reason LIKE 'not found%'"
            ).fetchall()
        }
    box.chaos.not_found = set()
    _ok(box.run(), row, "recovery run")
    if not set(ids) <= rejected:
        row.note = f"FAIL: 404 orders not set aside: {sorted(set(ids) - rejected)}"
    else:
        row.note = f"{len(ids)} set aside, then fetched"


def _status_disagree(make: Callable[..., Sandbox], row: Row) -> None:
    box = make()
    box.chaos.list_status = {
        o["orderId"]: ("canceled" if o.get("status") != "canceled" else "invoiced")
        for o in box.fixture["orders"][::10]
    }
    _ok(box.run(), row)
    _ok(box.run(), row)  # the look-back sees the disagreement again: the detail stays the truth
    _evidence(box, row)


def _dup_pages(make: Callable[..., Sandbox], row: Row) -> None:
    box = make(config={"sync_chunk_days": 30})  # one list query over every order: several pages
    box.chaos.dup_pages = True
    box.chaos.scroll_size = 50
    _ok(box.run(), row)
    _evidence(box, row)


def _scroll_expiry(make: Callable[..., Sandbox], row: Row) -> None:
    box = make(scroll_idle_seconds=1.0)
    box.chaos.scroll_size = 50
    box.chaos.scroll_stall = 2.0
    _ok(box.run(), row)
    _evidence(box, row)


def _icomm_per_contact(make: Callable[..., Sandbox], row: Row, emails: list[str]) -> None:
    box = make(blocked=set(emails))
    first = box.run()
    row.runs += 1
    with duckdb.connect(str(box.db), read_only=True) as conn:
        dead = conn.execute("SELECT count(*) FROM icomm_dead_letter").fetchone()[0]
    box.icomm_app.state.icomm.blocked_emails = set()
    _ok(box.run(), row, "retry run")
    if dead != len(emails):
        row.note = f"FAIL: {len(emails)} refused but {dead} in the dead letter"
    else:
        row.note = f"run 1 exit {first.rc}, {dead} in the dead letter; run 2 sends them"


def _crash(kill_when: Callable[[Sandbox], bool], **spec: Any) -> Scenario:
    def scenario(make: Callable[..., Sandbox], row: Row) -> None:
        box = make(**spec)
        first = box.run(kill_when=kill_when)
        row.runs += 1
        if not first.killed:
            row.note = f"FAIL: the run finished (exit {first.rc}) before the kill point"
            return
        at_kill = (
            f"killed after {box.vtex_requests()} order details, {box.icomm_stats()['accepted']} contacts"
        )
        box.icomm_app.state.icomm.faults.latency = 0.0
        second = box.run()
        _ok(second, row, "run after the crash")
        released = "dead run's pool slot released" if "died with its process" in second.output else ""
        row.note = row.note or ", ".join(x for x in (at_kill, released) if x)

    return scenario


def scenarios(ref_details: int, ref_contacts: list[str]) -> list[tuple[str, bool, Scenario]]:
    """(fault, in CI, scenario). CI runs the cheap ones as pytest tests in vtex_pipeline_tests/chaos."""
    return [
        ("undisturbed, run twice (idempotent)", False, _runs(n=2)),
        (
            "VTEX 429 burst with Retry-After",
            False,
            _runs({"vtex_faults": "storm429=5,rate429=0.03,retry_after=1,seed=6"}),
        ),
        (
            "VTEX 429 burst without Retry-After",
            False,
            _runs({"vtex_faults": "storm429=4,rate429=0.03,retry_after=0,seed=6"}),
        ),
        ("VTEX 503 and 504", True, _runs({"vtex_faults": "rate503=0.05,rate504=0.05,seed=3"})),
        ("VTEX connection resets", False, _runs({"reset_rate": 0.05})),
        (
            "VTEX slower than the timeout",
            False,
            _runs({"vtex_faults": "slow=0.02,slow_seconds=4,seed=4", "config": {"request_timeout": 1.5}}),
        ),
        ("VTEX truncated / malformed JSON", True, _runs({"vtex_faults": "malformed=0.05,seed=5"})),
        ("VTEX scroll token expires mid-scroll", False, _scroll_expiry),
        ("VTEX same record on two pages", False, _dup_pages),
        ("VTEX order detail 404", True, _detail_404),
        ("VTEX list and detail disagree on status", True, _status_disagree),
        (
            "icomm 429",
            False,
            _runs({"icomm_faults": "rate429=0.3,retry_after=1,seed=4", "icomm_config": {"batch_size": 40}}),
        ),
        (
            "icomm 5xx",
            False,
            _runs({"icomm_faults": "fail_batches=0.3,seed=2", "icomm_config": {"batch_size": 40}}),
        ),
        ("icomm 200 with StatusCode error", False, _runs({"icomm_faults": "status_error=0.3,seed=3"})),
        (
            "icomm per-contact errors",
            False,
            lambda make, row: _icomm_per_contact(make, row, ref_contacts[::25]),
        ),
        (
            "icomm batch written, response lost",
            True,
            _runs({"icomm_faults": "lose_response=1,hang=3", "icomm_config": {"timeout": 1.5}}),
        ),
        (
            "SIGKILL mid raw partition",
            False,
            _crash(lambda b: b.vtex_requests() >= ref_details * 0.45),
        ),
        ("SIGKILL mid profile", False, _crash(lambda b: b.step_started("customer_profile"))),
        (
            "SIGKILL mid export",
            False,
            _crash(
                lambda b: b.icomm_stats().get("accepted", 0) >= len(ref_contacts) // 3,
                icomm_faults="latency=0.4",
                icomm_config={"batch_size": 30},
            ),
        ),
    ]


def build_fixture(now: datetime, customers: int, orders: int) -> dict[str, Any]:
    return generate_store(customers=customers, orders=orders, seed=11, now=now, span_days=SPAN_DAYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--only", help="run only faults whose name contains one of these (comma-separated)")
    parser.add_argument("--ci", action="store_true", help="only the scenarios CI runs")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 170))
    now = datetime.now(UTC).replace(microsecond=0)
    fixture = build_fixture(now, args.customers, args.orders)

    def make(**kw: Any) -> Sandbox:
        box = Sandbox(kw.pop("name", "scenario"), fixture, now, **kw)
        boxes.append(box)
        return box

    boxes: list[Sandbox] = []
    console.print(f"reference run: {len(fixture['clients'])} customers, {len(fixture['orders'])} orders")
    ref_box = make(name="reference")
    ref_run = ref_box.run()
    if ref_run.rc != 0:
        console.print(ref_run.output[-3000:])
        console.print("[red]the undisturbed reference run failed[/]")
        return 2
    reference = ref_box.snapshot()
    ref_details = ref_box.vtex_requests()
    ref_contacts = sorted(e for e, _ in reference[1])
    ref_secrets = ref_box.secrets_found()
    ref_box.close()
    rows: list[Row] = []
    for fault, ci, scenario in scenarios(ref_details, ref_contacts):
        wanted = [w.strip().lower() for w in (args.only or "").split(",") if w.strip()]
        if (wanted and not any(w in fault.lower() for w in wanted)) or (args.ci and not ci):
            continue
        row = Row(fault, ci)
        started = time.monotonic()
        boxes.clear()
        console.print(f"[bold]{fault}[/] …")
        try:
            scenario(make, row)
            if boxes and boxes[0].db.exists():
                compare(reference, boxes[0].snapshot(), row)
            row.secrets = sum(len(b.secrets_found()) for b in boxes)
        except Exception as exc:  # a scenario that cannot finish is a failed row, not a crash of the table
            row.note = f"FAIL: {type(exc).__name__}: {exc}"[:160]
        finally:
            for b in boxes:
                b.close()
        row.seconds = time.monotonic() - started
        rows.append(row)
        console.print(f"  {'ok' if row.ok else '[red]FAILED[/]'} in {row.seconds:.0f}s {row.note}")
    table = Table(title=f"make chaos — {len(fixture['orders'])} orders, {len(fixture['clients'])} customers")
    for col in ("fault", "CI", "runs", "expected", "loaded", "lost", "duplicated", "differ", "secrets found"):
        table.add_column(col, justify="left" if col == "fault" else "right")
    table.add_column("result")
    for r in rows:
        table.add_row(
            r.fault,
            "yes" if r.ci else "",
            str(r.runs),
            f"{r.expected:,}",
            f"{r.loaded:,}",
            str(r.lost),
            str(r.duplicated),
            str(r.differ),
            str(r.secrets),
            ("[green]ok[/]" if r.ok else "[red]FAIL[/]") + (f" — {r.note}" if r.note else ""),
        )
    console.print(table)
    if ref_secrets:
        console.print(f"[red]secrets in the reference run's output:[/] {ref_secrets}")
    failed = [r.fault for r in rows if not r.ok]
    if failed or ref_secrets:
        console.print(f"[red]{len(failed)} row(s) failed:[/] {', '.join(failed)}")
        return 1
    console.print(f"[green]all {len(rows)} rows: nothing lost, nothing duplicated, no secret found[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
