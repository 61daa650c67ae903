"""The fault matrix under the real daemon, on PostgreSQL, as `deploy/` runs it: a gRPC code server, the
daemon and the webserver each their own process, the instance of deploy/dagster.yaml (MonitoredRunLauncher,
run monitoring, run retries, pools of one). Each row is its own account (its own DuckDB file, pool,
schedule and icomm profile) in one integrations file, so the rows share one stack and run one after
the other; the simulators answer every request 0.2 s late, so a sync lasts tens of seconds and a fault
can land in the middle of it.

Each row measures what docs/operations.md's table shows: seconds from the fault until the run is marked
failed/canceled (detect), seconds until the account's data is synced again by itself (recover), orders
lost (the DuckDB file against the simulator's store) and contacts sent twice (the same e-mail with the same
fields twice in the icomm simulator's request log, not its final state). The figures are appended to
$VTEX_PIPELINE_FAULT_REPORT when set.

Minutes long: marked `daemon`; in `.ci/run` (`make test`). Needs PostgreSQL's server binaries.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline_tests.deploy.daemon_stack import (
    BIN,
    Processes,
    base_env,
    free_port,
    run_cli,
    run_errors,
    start_code_server_and_daemon,
    wait,
    write_home,
    write_workspace,
)

pytestmark = [pytest.mark.daemon, pytest.mark.postgres, pytest.mark.timeout(1800)]

VTEX_KEY, VTEX_TOKEN = "vtexappkey-faults-K3Y-91ab", "faults-T0KEN-5ecret-77f0"
ICOMM_KEY = "icomm-faults-K3Y-3c3c"
SECRETS = (VTEX_TOKEN, ICOMM_KEY, VTEX_KEY)
ROWS = ("worker_kill", "code_restart", "cancel_sync", "held_file")
LATENCY = "latency=0.2"
# accounts whose DuckDB file lives elsewhere than data/ (the disk-full row mounts a small tmpfs there)
DUCKDB_DIRS = {"disk_full": "small_disk"}
FIVE_MINUTES = 300
# waits for a run to start, sync or re-run: generous, as a loaded host takes minutes to start a run worker
LOADED = 900


@dataclass
class Row:
    row: str
    injected: str
    user_sees: str
    detect_seconds: float
    recover_seconds: float
    orders_lost: int
    contacts_sent_twice: int


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    procs: Processes
    workspace: Path
    home: Path
    grpc_port: int
    web_port: int
    vtex_url: str
    icomm_out: Path
    instance: Any
    start: str

    def cli(self, *args: str) -> str:
        return run_cli([str(BIN / "dagster"), *args, "-w", str(self.workspace)], self.env, self.tmp)

    def db(self, account: str) -> Path:
        return self.tmp / DUCKDB_DIRS.get(account, "data") / f"{account}.duckdb"


def _integrations(tmp: Path, vtex_url: str, icomm_url: str, start: str, rows: tuple[str, ...]) -> Path:
    items = [
        {
            "name": name,
            "account": "faultstore",
            "base_url": vtex_url,
            "duckdb_path": f"{DUCKDB_DIRS.get(name, 'data')}/{name}.duckdb",
            "requests_per_second": 200,
            "concurrency": 4,
            "start_date": start,
            "request_timeout": 10,
            "icomm": {
                "base_url": icomm_url,
                "profile_key": name,
                "batch_size": 25,
                "requests_per_second": 50,
            },
        }
        for name in rows
    ]
    path = tmp / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": items}), encoding="utf-8")
    return path


@contextlib.contextmanager
def _stack(
    tmp: Path, pg_env: dict[str, str] | None, rows: tuple[str, ...], webserver: bool
) -> Iterator[Stack]:
    """Simulators, code server, daemon (and webserver) on deploy/dagster.yaml's instance on PostgreSQL
    (`pg_env`), or on the packaged local instance (SQLite, what `vtex-pipeline dev` runs) without it."""
    import dagster as dg

    (tmp / "data").mkdir()
    (tmp / "logs").mkdir()
    home = write_home(tmp, pg_env)
    vtex_port, icomm_port, grpc_port, web_port = free_port(), free_port(), free_port(), free_port()
    start = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    env = base_env(tmp, pg_env or {}, home)
    icomm_out = tmp / "icomm-requests.jsonl"
    vtex_url, icomm_url = f"http://127.0.0.1:{vtex_port}", f"http://127.0.0.1:{icomm_port}"
    env.update(
        {
            "VTEX_PIPELINE_INTEGRATIONS": str(_integrations(tmp, vtex_url, icomm_url, start, rows)),
            "VTEX_APP_KEY": VTEX_KEY,
            "VTEX_APP_TOKEN": VTEX_TOKEN,
            "ICOMM_API_KEY": ICOMM_KEY,
            "VTEX_PIPELINE_SYNC_CRON": "* * * * *",
            "VTEX_PIPELINE_SENSOR_INTERVAL_SECONDS": "15",
        }
    )
    procs = Processes(tmp / "logs", marker=f"VTEX_TEST_MARKER={tmp}")
    # three days of orders (the generator's default spans two years): each sync fetches a few hundred
    fixture = tmp / "store.json"
    store = generate_store(customers=200, orders=600, seed=11, now=datetime.now(UTC), span_days=3)
    fixture.write_text(json.dumps(store, default=str), encoding="utf-8")
    workspace = write_workspace(tmp / "workspace.yaml", grpc_port)
    cli = str(BIN / "vtex-pipeline")
    saved = {k: os.environ.get(k) for k in (pg_env or {})}
    os.environ.update(pg_env or {})  # this process reads the same instance
    try:
        procs.start(
            "vtex_simulator",
            [cli, "simulate", "vtex", "--port", str(vtex_port), "--fixture", str(fixture),
             "--app-key", VTEX_KEY, "--app-token", VTEX_TOKEN, "--faults", LATENCY],
            env, tmp,
        )  # fmt: skip
        procs.start(
            "icomm_simulator",
            [cli, "simulate", "icomm", "--port", str(icomm_port), "--out", str(icomm_out),
             "--api-key", ICOMM_KEY, *[a for name in rows for a in ("--profile", name)]],
            env, tmp,
        )  # fmt: skip
        procs.wait_ports("simulator", (vtex_port, icomm_port), 60)
        start_code_server_and_daemon(procs, env, tmp, grpc_port, workspace)
        if webserver:
            procs.start(
                "webserver",
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", str(workspace)],
                env, tmp,
            )  # fmt: skip
            procs.wait_ports("webserver", (web_port,), 180, 1)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield Stack(
                tmp, env, procs, workspace, home, grpc_port, web_port, vtex_url, icomm_out, instance, start
            )
    except BaseException:
        print(procs.dump())
        raise
    finally:
        procs.stop_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def fault_stack(postgres_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pg_env = postgres_cluster.env(postgres_cluster.create_database("daemon_faults"))
    with _stack(tmp_path_factory.mktemp("faults"), pg_env, ROWS, webserver=True) as stack:
        yield stack


# ------------------------------------------------------------------------------------------ helpers
def _runs(stack: Stack, account: str, job: str = "raw_sync") -> list:
    import dagster as dg

    records = stack.instance.get_run_records(dg.RunsFilter(job_name=f"{account}_{job}"))
    return sorted(records, key=lambda r: r.create_timestamp)


def _started_run(stack: Stack, account: str, step: str = "raw_orders", timeout: float = 240):
    """The account's raw sync run, once its `step` has been running for a few seconds."""

    def running():
        stack.procs.check_alive()
        for record in _runs(stack, account):
            run = record.dagster_run
            for e in stack.instance.all_logs(run.run_id):
                ev = e.dagster_event
                inside = ev and ev.event_type_value == "STEP_START" and step in (ev.step_key or "")
                if inside and time.time() - e.timestamp > 5 and not run.is_finished:
                    return run
        return None

    return wait(f"{account}: a sync run inside {step}", running, timeout, 1)


def _messages(stack: Stack, run_id: str) -> list[str]:
    out = []
    for e in stack.instance.all_logs(run_id):
        ev = e.dagster_event
        out.append((e.user_message or "") + " " + ((ev.message or "") if ev else ""))
    return out


def _worker_pid(stack: Stack, run_id: str) -> int:
    for msg in _messages(stack, run_id):
        if "Started process for run (pid: " in msg:
            return int(msg.split("(pid: ")[1].split(")")[0])
    raise AssertionError(f"no worker pid in the log of run {run_id}")


def _status(stack: Stack, run_id: str) -> str:
    return stack.instance.get_run_by_id(run_id).status.value


def _wait_status(stack: Stack, run_id: str, statuses: set[str], timeout: float) -> float:
    t0 = time.monotonic()
    wait(f"run {run_id} {statuses}", lambda: _status(stack, run_id) in statuses, timeout, 1)
    return time.monotonic() - t0


def _first_run(stack: Stack, account: str, what: str, timeout: float, *, after: float, status: str,
               job: str = "raw_sync", partition: str | None = None) -> Any:  # fmt: skip
    """The first run of the account's `job` created after `after` (epoch) that ended in `status` (and is
    of `partition`, when one is named), once there is one; failing on none by `timeout`."""

    def found():
        stack.procs.check_alive()
        for r in _runs(stack, account, job):
            if partition is not None and r.dagster_run.tags.get("dagster/partition") != partition:
                continue
            if r.create_timestamp.timestamp() > after and r.dagster_run.status.value == status:
                return r
        return None

    return wait(what, found, timeout, 2)


def _synced_after(stack: Stack, account: str, after: float, timeout: float) -> Any:
    """The first raw sync run created after `after` (epoch) that succeeded, failing on none."""
    what = f"{account}: a successful sync after the fault"
    return _first_run(stack, account, what, timeout, after=after, status="SUCCESS")


def _days(stack: Stack) -> list[str]:
    """The complete days since the start date: the partitions the profile sensor requests."""
    days = []
    d = datetime.fromisoformat(stack.start).date()
    while d < datetime.now(UTC).date():
        days.append(d.isoformat())
        d += timedelta(days=1)
    return days


def _profiles_done(stack: Stack, account: str, timeout: float = 480) -> None:
    days = _days(stack)

    def done():
        stack.procs.check_alive()
        ok = {
            r.dagster_run.tags.get("dagster/partition")
            for r in _runs(stack, account, "profile_export")
            if r.dagster_run.status.value == "SUCCESS"
        }
        return set(days) <= ok

    wait(f"{account}: the sensor's profile runs for {days}", done, timeout, 3)


def _switch(stack: Stack, account: str, on: bool) -> None:
    verb = "start" if on else "stop"
    stack.cli("schedule", verb, f"{account}_raw_sync_every_4h")
    stack.cli("sensor", verb, f"{account}_profile_after_sync")


def _drain(stack: Stack, account: str, timeout: float = 240) -> None:
    def idle():
        return all(
            r.dagster_run.is_finished
            for job in ("raw_sync", "profile_export")
            for r in _runs(stack, account, job)
        )

    wait(f"{account}: runs in flight to finish", idle, timeout, 2)


def _orders_lost(stack: Stack, account: str, until: datetime) -> int:
    """Orders of the simulated store created in [start date, until) missing from the DuckDB file, plus
    those stored with another status than the store's."""
    import duckdb

    store = requests.get(f"{stack.vtex_url}/_sim/fixture", timeout=60).json()
    start = datetime.fromisoformat(stack.start).replace(tzinfo=UTC)
    expected = {
        o["orderId"]: o["status"]
        for o in store["orders"]
        if start <= datetime.fromisoformat(o["creationDate"].replace("Z", "+00:00")) < until
    }
    with duckdb.connect(str(stack.db(account)), read_only=True) as conn:
        stored = dict(conn.execute("SELECT order_id, status FROM raw_orders").fetchall())
    assert expected, "the store has no order in the synced range"
    return sum(1 for oid, status in expected.items() if stored.get(oid) != status)


def _synced_until(stack: Stack, account: str) -> datetime:
    import dagster as dg

    event = stack.instance.get_latest_materialization_event(dg.AssetKey([account, "raw_orders"]))
    return datetime.fromisoformat(event.asset_materialization.metadata["synced_until"].value)


def _sent_twice(stack: Stack, account: str) -> int:
    """Contacts icomm received twice with the same fields (a re-send, not a change), from its log."""
    seen: Counter[str] = Counter()
    if stack.icomm_out.exists():
        for line in stack.icomm_out.read_text(encoding="utf-8").splitlines():
            c = json.loads(line)
            if c.get("profile_key") == account:
                seen[json.dumps([c["Email"], c["CustomFields"]], sort_keys=True)] += 1
    assert seen, f"{account}: icomm received no contact"
    return sum(n - 1 for n in seen.values() if n > 1)


def _contacts_match_profile(stack: Stack, account: str) -> None:
    import duckdb

    from vtex_pipeline.icomm.delta import deliverable_sql

    lines = [json.loads(line) for line in stack.icomm_out.read_text(encoding="utf-8").splitlines()]
    sent = {c["Email"] for c in lines if c.get("profile_key") == account}
    email = "lower(trim(CAST(email AS VARCHAR)))"
    with duckdb.connect(str(stack.db(account)), read_only=True) as conn:
        expected = {
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT {email} FROM customer_profile WHERE {deliverable_sql(email)}"
            ).fetchall()
        }
    assert sent == expected


def _report(row: Row) -> None:
    print(json.dumps(asdict(row)))
    target = os.environ.get("VTEX_PIPELINE_FAULT_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(row)) + "\n")


def _finish(stack: Stack, account: str, row: Row) -> None:
    """Let the chain finish, switch the account off, and check nothing was lost or sent twice."""
    _profiles_done(stack, account, LOADED)
    _switch(stack, account, False)
    _drain(stack, account, LOADED)
    row.orders_lost = _orders_lost(stack, account, _synced_until(stack, account))
    row.contacts_sent_twice = _sent_twice(stack, account)
    _contacts_match_profile(stack, account)
    _report(row)
    assert row.orders_lost == 0
    assert row.contacts_sent_twice == 0


def _graphql(stack: Stack, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    res = requests.post(
        f"http://127.0.0.1:{stack.web_port}/graphql",
        json={"query": query, "variables": variables},
        timeout=60,
    )
    res.raise_for_status()
    body = res.json()
    assert "errors" not in body, body
    return body["data"]


# --------------------------------------------------------------------------------------------- rows
def test_run_worker_sigkill_mid_sync(fault_stack: Stack) -> None:
    stack, account = fault_stack, "worker_kill"
    _switch(stack, account, True)
    run = _started_run(stack, account)
    killed_at = time.time()
    os.kill(_worker_pid(stack, run.run_id), signal.SIGKILL)
    detect = _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
    recovered = _synced_after(stack, account, killed_at, FIVE_MINUTES)
    recover = recovered.end_time - killed_at
    _finish(
        stack, account,
        Row("run worker SIGKILL mid-sync", "kill -9 of the run's process", "run FAILURE (code server: "
            "process exited), re-launched by run_retries", round(detect, 1), round(recover, 1), -1, -1),
    )  # fmt: skip


def _code_server_restart_row(stack: Stack, account: str, label: str) -> None:
    """What `docker compose up -d` does to `code`: the server and its run workers die together."""
    _switch(stack, account, True)
    run = _started_run(stack, account)
    killed_at = time.time()
    stack.procs.stop("code_server", grace=0)  # SIGTERM then SIGKILL to the group: workers included
    with contextlib.suppress(ProcessLookupError):
        os.killpg(stack.procs.procs["code_server"].pid, signal.SIGKILL)
    from dagster._grpc.client import DagsterGrpcClient

    stack.procs.start(
        "code_server",
        [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(stack.grpc_port),
         "-m", "vtex_pipeline.definitions", "--location-name", "vtex_pipeline"],
        stack.env, stack.tmp,
    )  # fmt: skip
    client = DagsterGrpcClient(port=stack.grpc_port, host="127.0.0.1")
    wait("code server back", lambda: client.ping("up"), 300, 1)
    _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
    detect = time.time() - killed_at
    failure = [m for m in _messages(stack, run.run_id) if "no heartbeat from its run worker" in m]
    assert failure, run_errors(stack.instance, stack.instance.get_run_by_id(run.run_id))
    assert detect <= FIVE_MINUTES
    recovered = _synced_after(stack, account, killed_at, FIVE_MINUTES)
    _finish(
        stack, account,
        Row(label, "kill -9 of the code server's "
            "process group, restarted on the same port", "run FAILURE: 'no heartbeat from its run worker "
            "for n s: the worker is gone', re-launched by run_retries", round(detect, 1), round(recovered.end_time - killed_at, 1),
            -1, -1),
    )  # fmt: skip


@pytest.mark.chaos_slow  # about 6 minutes (heartbeat staleness, then the retry): `make chaos`, not CI
def test_code_server_killed_and_restarted_mid_sync(fault_stack: Stack) -> None:
    _code_server_restart_row(
        fault_stack, "code_restart", "code server killed and restarted mid-sync (processes, PostgreSQL)"
    )


def test_cancel_from_the_ui_mid_sync(fault_stack: Stack) -> None:
    stack, account = fault_stack, "cancel_sync"
    _switch(stack, account, True)
    run = _started_run(stack, account)
    asked_at = time.time()
    data = _graphql(
        stack,
        "mutation($runId: String!) { terminateRun(runId: $runId) { __typename "
        "... on TerminateRunFailure { message } ... on PythonError { message } } }",
        {"runId": run.run_id},
    )
    assert data["terminateRun"]["__typename"] == "TerminateRunSuccess", data
    detect = _wait_status(stack, run.run_id, {"CANCELED"}, 120)
    # the slot is free again within the monitoring window, and the file is consistent (opens, no
    # orders of a chunk without their items: the chunk's transaction is all or nothing)
    wait("pool slot freed", lambda: not stack.instance.event_log_storage.get_concurrency_info(
        f"duckdb_{account}").claimed_slots, 120, 2)  # fmt: skip
    recovered = _synced_after(stack, account, asked_at, FIVE_MINUTES)
    _finish(
        stack, account,
        Row("cancel from the UI mid-sync", "GraphQL terminateRun", "run CANCELED; the next tick resumes "
            "from the watermarks", round(detect, 1), round(recovered.end_time - asked_at, 1), -1, -1),
    )  # fmt: skip


def _assert_names_the_holder(stack: Stack, run: Any, holder: subprocess.Popen) -> None:
    errors = run_errors(stack.instance, run)
    assert "is held by another process" in errors and f"(PID {holder.pid})" in errors, errors


@dataclass
class _Held:
    proc: subprocess.Popen
    released_at: float = 0.0  # when it let go of the file (epoch)


@contextlib.contextmanager
def _holding(code: str) -> Iterator[_Held]:
    """A Python process running `code`, which takes the DuckDB file and prints `held`; ended (and the
    moment it let go recorded) on the way out."""
    held = _Held(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True))
    try:
        assert held.proc.stdout.readline().strip() == "held"
        yield held
    finally:
        held.proc.kill()
        held.proc.wait()
        held.released_at = time.time()


def test_duckdb_file_held_by_another_process(fault_stack: Stack) -> None:
    stack, account = fault_stack, "held_file"
    db = stack.db(account)
    hold = (
        f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(3600)"
    )
    with _holding(hold) as held:
        started_at = time.time()
        _switch(stack, account, True)

        def failed_run():
            for r in _runs(stack, account):
                if r.dagster_run.status.value == "FAILURE":
                    return r
            return None

        # each step tries the file for about 6 s (AccountDuckDBResource), then fails naming the holder
        failed = wait("a run failing on the held file", failed_run, 480, 2)
        detect = failed.end_time - started_at
        _assert_names_the_holder(stack, failed.dagster_run, held.proc)
    recovered = _synced_after(stack, account, held.released_at, FIVE_MINUTES)
    _finish(
        stack, account,
        Row("DuckDB file held by another process when a run starts", "a process keeps the file open "
            "for writing", "run FAILURE: 'DuckDB file ... is held by another process: <program> (PID n)'; "
            "the next tick after it lets go syncs", round(detect, 1),
            round(recovered.end_time - held.released_at, 1), -1, -1),
    )  # fmt: skip


def test_no_secret_in_anything_the_deployment_wrote(fault_stack: Stack, postgres_cluster) -> None:
    """After the faulty runs: the PostgreSQL event log (pg_dump), the daemon's, code server's and
    webserver's logs, compute logs, DuckDB files and every other file under the deployment's folders."""
    stack = fault_stack
    dump = subprocess.run(
        [str(postgres_cluster.bin_dir / "pg_dump"), "-h", postgres_cluster.host, "-p", str(postgres_cluster.port),
         "-U", postgres_cluster.user, "daemon_faults"],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    assert b"vtex_raw_sync" in dump or b"raw_sync" in dump  # the dump holds the runs
    found = [s for s in SECRETS[:2] if s.encode() in dump]
    assert not found, f"secrets in the PostgreSQL dump: {len(found)}"
    leaks = []
    for root in (stack.tmp / "logs", stack.home, stack.tmp / "data"):
        for path in root.rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                leaks += [f"{path}" for s in SECRETS[:2] if s.encode() in blob]
    assert not leaks, leaks


@pytest.mark.chaos_slow
def test_code_server_killed_and_restarted_mid_sync_on_the_local_sqlite_instance(tmp_path: Path) -> None:
    """The same under the local instance of `vtex-pipeline dev` (SQLite, the packaged dagster.yaml)."""
    with _stack(tmp_path, None, ("sqlite_restart",), webserver=False) as stack:
        _code_server_restart_row(
            stack, "sqlite_restart", "code server killed and restarted mid-sync (processes, SQLite)"
        )


SLOW_ROWS = (
    "daemon_restart", "export_kill", "profile_kill", "cancel_export", "vtex_401", "vtex_403",
    "icomm_401", "disk_full", "held_mid_run", "pg_restart", "pg_down",
)  # fmt: skip


@pytest.fixture(scope="module")
def slow_stack(postgres_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pg_env = postgres_cluster.env(postgres_cluster.create_database("daemon_faults_slow"))
    with _stack(tmp_path_factory.mktemp("slow_faults"), pg_env, SLOW_ROWS, webserver=True) as stack:
        yield stack


@pytest.mark.chaos_slow
def test_daemon_killed_and_restarted_mid_sync(slow_stack: Stack) -> None:
    """The run worker belongs to the code server, not the daemon: the sync goes on, the daemon catches up."""
    stack, account = slow_stack, "daemon_restart"
    _switch(stack, account, True)
    run = _started_run(stack, account)
    killed_at = time.time()
    stack.procs.stop("daemon", grace=0)
    time.sleep(20)
    stack.procs.start(
        "daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(stack.workspace)], stack.env, stack.tmp
    )
    _wait_status(stack, run.run_id, {"SUCCESS"}, FIVE_MINUTES)
    record = stack.instance.get_run_record_by_id(run.run_id)
    _finish(
        stack, account,
        Row("dagster-daemon kill -9 mid-sync, restarted 20 s later", "kill -9 of the daemon's process group",
            "nothing: the run (a child of the code server) finishes; ticks resume with the daemon", 0.0,
            round(record.end_time - killed_at, 1), -1, -1),
    )  # fmt: skip


@pytest.mark.chaos_slow
def test_run_worker_sigkill_mid_export(slow_stack: Stack) -> None:
    """icomm answers each batch 1 s late; the worker is killed after the second batch is recorded."""
    stack, account = slow_stack, "export_kill"
    icomm_base = _icomm_base(stack, account)
    requests.post(f"{icomm_base}/_sim/faults", json={"spec": "latency=1"}, timeout=10).raise_for_status()
    _switch(stack, account, True)

    run = _exporting(stack, account, 50, timeout=420)
    killed_at = time.time()
    os.kill(_worker_pid(stack, run.run_id), signal.SIGKILL)
    _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
    detect = time.time() - killed_at
    requests.post(f"{icomm_base}/_sim/faults", json={"spec": ""}, timeout=10).raise_for_status()
    _profiles_done(stack, account, timeout=FIVE_MINUTES + 120)
    recover = time.time() - killed_at
    _switch(stack, account, False)
    _drain(stack, account)
    row = Row("run worker kill -9 mid-export (after 2 batches of 25)", "kill -9 of the run's process",
              "run FAILURE, re-launched by run_retries; the export settles the batch in flight with ListFull, "
              "then sends what icomm_sent lacks", round(detect, 1),
              round(recover, 1), _orders_lost(stack, account, _synced_until(stack, account)),
              _sent_twice(stack, account))  # fmt: skip
    _contacts_match_profile(stack, account)
    _report(row)
    assert row.orders_lost == 0
    # icomm has no idempotency key: the batch in flight at the kill is in icomm_in_flight, and the
    # retry asks icomm which of its contacts it already holds before sending (icomm/export.py)
    assert row.contacts_sent_twice == 0


def _step_starts(stack: Stack, run_id: str) -> list[str]:
    return [
        f"STEP_START {e.dagster_event.step_key}"
        for e in stack.instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
    ]


def _sent_lines(stack: Stack, account: str) -> int:
    if not stack.icomm_out.exists():
        return 0
    return sum(1 for line in stack.icomm_out.read_text().splitlines() if f'"profile_key":"{account}"' in line)


def _icomm_base(stack: Stack, account: str) -> str:
    integrations = yaml.safe_load(Path(stack.env["VTEX_PIPELINE_INTEGRATIONS"]).read_text())["integrations"]
    return next(i["icomm"]["base_url"] for i in integrations if i["name"] == account)


def _post(url: str, body: dict[str, Any]) -> None:
    requests.post(url, json=body, timeout=10).raise_for_status()


def _exporting(stack: Stack, account: str, sent_at_least: int, timeout: float = LOADED):
    """An export run of `account` inside icomm_contacts once icomm logged `sent_at_least` of its contacts."""

    def exporting():
        stack.procs.check_alive()
        for record in _runs(stack, account, "profile_export"):
            run = record.dagster_run
            if run.is_finished:
                continue
            started = any("icomm_contacts" in m for m in _step_starts(stack, run.run_id))
            if started and _sent_lines(stack, account) >= sent_at_least:
                return run
        return None

    return wait(f"{account}: an export in progress", exporting, timeout, 0.5)


def _terminate(stack: Stack, run_id: str) -> None:
    data = _graphql(
        stack,
        "mutation($runId: String!) { terminateRun(runId: $runId) { __typename "
        "... on TerminateRunFailure { message } ... on PythonError { message } } }",
        {"runId": run_id},
    )
    assert data["terminateRun"]["__typename"] == "TerminateRunSuccess", data


def _reexecute(stack: Stack, run_id: str) -> str:
    """What the UI's Re-execute (all steps) does: a new run of the same job, partition and tags."""
    data = _graphql(
        stack,
        "mutation($params: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $params) { "
        "__typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        {"params": {"parentRunId": run_id, "strategy": "ALL_STEPS"}},
    )
    result = data["launchRunReexecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _rerun_profiles(stack: Stack, account: str, timeout: float = LOADED) -> float:
    """The operator's re-run: re-execute, from the UI, each day's last failed or canceled profile run
    until every day has a successful one (the sensor requests a day once: its run key). Returns when."""
    relaunched: set[str] = set()
    days = _days(stack)

    def done():
        stack.procs.check_alive()
        runs = _runs(stack, account, "profile_export")
        by_day: dict[str, list] = {}
        for r in runs:
            by_day.setdefault(r.dagster_run.tags.get("dagster/partition"), []).append(r)
        missing = [
            d for d in days if not any(r.dagster_run.status.value == "SUCCESS" for r in by_day.get(d, []))
        ]
        if not missing:
            return True
        for day in missing:
            last = by_day[day][-1].dagster_run if by_day.get(day) else None
            if last is not None and last.is_finished and last.run_id not in relaunched:
                relaunched.add(last.run_id)
                relaunched.add(_reexecute(stack, last.run_id))
        return False

    wait(f"{account}: every day's profile re-run", done, timeout, 3)
    return time.time()


def _last_success_end(stack: Stack, account: str, job: str) -> float:
    return max(r.end_time for r in _runs(stack, account, job) if r.dagster_run.status.value == "SUCCESS")


@pytest.mark.chaos_slow
def test_run_worker_sigkill_mid_profile(slow_stack: Stack) -> None:
    """The worker is killed inside `customer_profile` (it replaces the day's profile in one transaction)."""
    stack, account = slow_stack, "profile_kill"
    _switch(stack, account, True)

    def profiling():
        stack.procs.check_alive()
        for record in _runs(stack, account, "profile_export"):
            run = record.dagster_run
            if not run.is_finished and any("customer_profile" in m for m in _step_starts(stack, run.run_id)):
                return run
        return None

    run = wait(f"{account}: a profile run inside customer_profile", profiling, LOADED, 0.2)
    killed_at = time.time()
    os.kill(_worker_pid(stack, run.run_id), signal.SIGKILL)
    detect = _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
    ended = [
        e.dagster_event.step_key
        for e in stack.instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"
    ]
    assert not any("customer_profile" in k for k in ended), f"the profile had ended before the kill: {ended}"
    partition = run.tags["dagster/partition"]

    recovered = _first_run(
        stack, account, f"{account}: the profile of {partition} again", LOADED,
        after=killed_at, status="SUCCESS", job="profile_export", partition=partition,
    )  # fmt: skip
    _finish(
        stack, account,
        Row("run worker kill -9 mid-profile", "kill -9 of the run's process inside customer_profile",
            "run FAILURE (the code server saw its child exit), re-launched by run_retries; the day's profile "
            "is replaced whole", round(detect, 1), round(recovered.end_time - killed_at, 1), -1, -1),
    )  # fmt: skip


@pytest.mark.chaos_slow
def test_cancel_from_the_ui_mid_export(slow_stack: Stack) -> None:
    """icomm answers each batch 1 s late; Terminate after the second batch is recorded. The batch in
    flight finishes (interrupts.py holds the signal) and is recorded; the re-run sends the rest."""
    stack, account = slow_stack, "cancel_export"
    icomm_base = _icomm_base(stack, account)
    _post(f"{icomm_base}/_sim/faults", {"spec": "latency=1"})
    _switch(stack, account, True)
    run = _exporting(stack, account, 50)
    asked_at = time.time()
    _terminate(stack, run.run_id)
    detect = _wait_status(stack, run.run_id, {"CANCELED"}, 120)
    pool = f"duckdb_{account}"
    wait("pool slot freed", lambda: not stack.instance.event_log_storage.get_concurrency_info(pool).claimed_slots,
         120, 1)  # fmt: skip
    freed = time.time() - asked_at
    _post(f"{icomm_base}/_sim/faults", {"spec": ""})
    _rerun_profiles(stack, account)
    recover = _last_success_end(stack, account, "profile_export") - asked_at
    _switch(stack, account, False)
    _drain(stack, account, LOADED)
    row = Row(f"cancel from the UI (GraphQL terminateRun) mid-export, after 2 batches of 25 (slot freed after "
              f"{freed:.0f} s)", "GraphQL terminateRun", "run CANCELED once the batch in flight is answered "
              "and recorded; the slot is freed; Re-execute sends what icomm_sent lacks",
              round(detect, 1), round(recover, 1), _orders_lost(stack, account, _synced_until(stack, account)),
              _sent_twice(stack, account))  # fmt: skip
    _contacts_match_profile(stack, account)
    _report(row)
    assert row.orders_lost == 0
    assert row.contacts_sent_twice <= 25  # at most the batch in flight (icomm has no idempotency key)


def _vtex_auth_row(stack: Stack, account: str, fault: dict[str, Any], expected: str, label: str) -> None:
    """The key works for the first pages of raw_orders, then VTEX answers 401/403 (`fault` for the
    simulator's /_sim/keys); the run fails with `expected`, the next tick after the key is fixed syncs."""
    _switch(stack, account, True)
    run = _started_run(stack, account, timeout=LOADED)
    _post(f"{stack.vtex_url}/_sim/keys", {"app_key": VTEX_KEY, **fault})
    try:
        detect = _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
        errors = run_errors(stack.instance, stack.instance.get_run_by_id(run.run_id))
        assert expected in errors, errors
        assert not [s for s in SECRETS[:2] if s in errors]
    finally:
        _post(f"{stack.vtex_url}/_sim/keys", {"app_key": VTEX_KEY, "token": VTEX_TOKEN, "permissions": ["*"]})
    fixed_at = time.time()
    recovered = _synced_after(stack, account, fixed_at, LOADED)
    _finish(
        stack, account,
        Row(label, "the simulator's key changed 5 s into raw_orders", f"run FAILURE: '{expected} …' (not retried: an asset failure); "
            "the next tick after the fix syncs", round(detect, 1), round(recovered.end_time - fixed_at, 1), -1, -1),
    )  # fmt: skip


@pytest.mark.chaos_slow
def test_vtex_401_after_a_first_page(slow_stack: Stack) -> None:
    _vtex_auth_row(
        slow_stack, "vtex_401", {"revoke": True}, "VTEX rejected the app key or token (401)",
        "VTEX answers 401 mid-sync (key revoked)",
    )  # fmt: skip


@pytest.mark.chaos_slow
def test_vtex_403_after_a_first_page(slow_stack: Stack) -> None:
    from vtex_pipeline.vtex import permissions

    granted = [p.key for p in permissions.ALL_PERMISSIONS if p != permissions.VIEW_ORDER]
    _vtex_auth_row(
        slow_stack, "vtex_403", {"token": VTEX_TOKEN, "permissions": granted},
        "(403): the key lacks OMS / View Order", "VTEX answers 403 mid-sync (View Order removed from the role)",
    )  # fmt: skip


@pytest.mark.chaos_slow
def test_icomm_401_mid_export(slow_stack: Stack) -> None:
    stack, account = slow_stack, "icomm_401"
    icomm_base = _icomm_base(stack, account)
    _post(f"{icomm_base}/_sim/faults", {"spec": "latency=1"})
    _switch(stack, account, True)
    run = _exporting(stack, account, 50)
    _post(f"{icomm_base}/_sim/keys", {"api_keys": []})
    try:
        detect = _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
        errors = run_errors(stack.instance, stack.instance.get_run_by_id(run.run_id))
        assert "icomm refused the API key on SaveMultiContact (HTTP 401" in errors, errors
        assert ICOMM_KEY not in errors
    finally:
        _post(f"{icomm_base}/_sim/keys", {"api_keys": [ICOMM_KEY]})
        _post(f"{icomm_base}/_sim/faults", {"spec": ""})
    fixed_at = time.time()
    _rerun_profiles(stack, account)
    recover = _last_success_end(stack, account, "profile_export") - fixed_at
    _finish(
        stack, account,
        Row("icomm answers 401 mid-export (key revoked after 2 batches of 25)", "icomm refuses the API key",
            "icomm_contacts FAILURE: 'icomm refused the API key on SaveMultiContact (HTTP 401, auth scheme "
            "…); check ICOMM_API_KEY and ICOMM_AUTH_SCHEME' (not retried); Re-execute after the fix sends "
            "the rest", round(detect, 1), round(recover, 1), -1, -1),
    )  # fmt: skip


def _table_counts(db: Path) -> dict[str, int]:
    import duckdb

    tables = ("raw_orders", "raw_order_items", "raw_customers", "customer_profile", "icomm_sent")
    with duckdb.connect(str(db), read_only=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _fill(disk: Path) -> Path:
    """A ballast file taking every free byte of the filesystem at `disk`."""
    ballast = disk / "ballast"
    st = os.statvfs(disk)
    listing = subprocess.run(["du", "-ab", str(disk)], capture_output=True, text=True, check=False).stdout
    print(f"{disk}: {st.f_bavail * st.f_frsize} bytes free of {st.f_blocks * st.f_frsize}, inodes free "
          f"{st.f_favail}\n{listing}")  # fmt: skip
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize)
        with contextlib.suppress(OSError):  # whatever is left, to the last page (unbuffered)
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return ballast


@pytest.mark.chaos_slow
def test_disk_full_while_writing_the_duckdb_file(slow_stack: Stack) -> None:
    """The account's DuckDB file on a 64 MB tmpfs: after a clean first chain, a ballast file takes every
    free byte and 30 orders change status in the store, so the next sync must write; it fails with the
    disk's error, the file keeps every committed row, and once the ballast is gone the next tick ends in
    the state of a run that never failed (every order current, contacts = the profile, none sent twice)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the DuckDB file's folder needs root")
    stack, account = slow_stack, "disk_full"
    disk = stack.db(account).parent
    disk.mkdir(exist_ok=True)
    assert not any(disk.iterdir()), f"{disk} is not empty before the mount"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True, timeout=30)
    try:
        _switch(stack, account, True)
        _profiles_done(stack, account, timeout=LOADED)
        _switch(stack, account, False)
        _drain(stack, account, LOADED)
        before = _table_counts(stack.db(account))
        store = requests.get(f"{stack.vtex_url}/_sim/fixture", timeout=60).json()
        start = datetime.fromisoformat(stack.start).replace(tzinfo=UTC)
        in_range = [
            o
            for o in store["orders"]
            if datetime.fromisoformat(o["creationDate"].replace("Z", "+00:00")) >= start
        ]
        for o in in_range[:30]:
            status = "canceled" if o["status"] != "canceled" else "invoiced"
            _post(f"{stack.vtex_url}/_sim/orders/{o['orderId']}/status", {"status": status})
        ballast = _fill(disk)
        full_at = time.time()
        stack.cli("schedule", "start", f"{account}_raw_sync_every_4h")

        what = f"{account}: a sync failing on the full disk"
        failed = _first_run(stack, account, what, LOADED, after=full_at, status="FAILURE")
        detect = failed.end_time - failed.start_time  # from the run's start: it meets the full disk at once
        errors = run_errors(stack.instance, failed.dagster_run)
        stack.cli("schedule", "stop", f"{account}_raw_sync_every_4h")
        _drain(stack, account, LOADED)
        assert "No space left on device" in errors, errors
        after = _table_counts(stack.db(account))  # the file opens; every committed row is there
        assert after == before, (before, after)
        ballast.unlink()
        freed_at = time.time()
        _switch(stack, account, True)
        recovered = _synced_after(stack, account, freed_at, LOADED)
        _finish(
            stack, account,
            Row("disk full while writing the DuckDB file (64 MB tmpfs, a ballast file takes the rest)",
                "ENOSPC on the DuckDB file's filesystem; 30 orders changed status in the store",
                "run FAILURE: 'IO Error: … No space left on device' (not retried: an asset failure); the "
                "file opens with every committed row; the next tick after space is freed syncs",
                round(detect, 1), round(recovered.end_time - freed_at, 1), -1, -1),
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            _switch(stack, account, False)
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=30)


@pytest.mark.chaos_slow
def test_duckdb_file_taken_by_another_process_while_a_run_runs(slow_stack: Stack) -> None:
    """A process (a DuckDB CLI, a BI tool, a backup) takes the file between two writes of a running
    sync: the step that next opens it tries for about 6 s, then fails naming the holder; the chunks
    committed before stay, and the next tick after the holder lets go syncs the rest."""
    stack, account = slow_stack, "held_mid_run"
    db = stack.db(account)
    _switch(stack, account, True)

    def first_step_done():
        stack.procs.check_alive()
        for record in _runs(stack, account):
            run = record.dagster_run
            done = [
                e for e in stack.instance.all_logs(run.run_id)
                if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"
            ]  # fmt: skip
            if done and not run.is_finished:
                return run
        return None

    run = wait(f"{account}: a sync run past its first step", first_step_done, LOADED, 0.2)
    # polls for the lock, so it takes the file in the first gap between two of the run's connections
    grab = (
        "import duckdb, sys, time\n"
        "while True:\n"
        "    try:\n"
        f"        c = duckdb.connect({str(db)!r}); break\n"
        "    except duckdb.Error:\n"
        "        time.sleep(0.01)\n"
        "print('held', flush=True); time.sleep(3600)\n"
    )
    with _holding(grab) as held:
        taken_at = time.time()
        assert not stack.instance.get_run_by_id(run.run_id).is_finished, (
            "the run ended before the file was taken"
        )
        _wait_status(stack, run.run_id, {"FAILURE"}, FIVE_MINUTES)
        detect = time.time() - taken_at
        _assert_names_the_holder(stack, stack.instance.get_run_by_id(run.run_id), held.proc)
    recovered = _synced_after(stack, account, held.released_at, LOADED)
    _finish(
        stack, account,
        Row("DuckDB file taken by another process while a sync runs", "a process polls for the file's "
            "lock and holds it from the first gap between two of the run's connections",
            "run FAILURE: 'DuckDB file ... is held by another process: <program> (PID n)'; the chunks "
            "committed before stay; the next tick after it lets go syncs the rest", round(detect, 1),
            round(recovered.end_time - held.released_at, 1), -1, -1),
    )  # fmt: skip


@pytest.mark.chaos_slow
@pytest.mark.parametrize("outage", [0, 60], ids=["restart", "down_60s"])
def test_postgres_restarted_mid_sync(slow_stack: Stack, postgres_cluster, outage: int) -> None:
    """`pg_ctl restart -m fast` of the instance's cluster (every connection cut) while a sync runs, or
    `pg_ctl stop`, a minute down (a host or container restart that takes its time), then `start`. The last
    rows of the module, as they disturb every process of the stack."""
    stack, account = slow_stack, f"pg_{'restart' if outage == 0 else 'down'}"
    _switch(stack, account, True)
    run = _started_run(stack, account, timeout=LOADED)
    restarted_at = time.time()
    if outage:
        postgres_cluster.stop()
        time.sleep(outage)
        postgres_cluster.start()
    else:
        postgres_cluster.restart()
    down = time.time() - restarted_at
    wait(
        f"run {run.run_id} to end",
        lambda: stack.instance.get_run_by_id(run.run_id).is_finished,
        LOADED,
        2,
    )
    status = _status(stack, run.run_id)
    if status == "SUCCESS":
        detect, recovered = 0.0, stack.instance.get_run_record_by_id(run.run_id)
    else:
        record = stack.instance.get_run_record_by_id(run.run_id)
        detect = record.end_time - restarted_at
        print(run_errors(stack.instance, record.dagster_run))
        recovered = _synced_after(stack, account, restarted_at, LOADED)
    stack.procs.check_alive()  # the daemon, the code server and the webserver lived through it
    _finish(
        stack, account,
        Row(f"PostgreSQL {'restarted' if outage == 0 else 'stopped'} mid-sync (pg_ctl "
            f"{'restart' if outage == 0 else 'stop/start'} -m fast, {down:.0f} s down)",
            "every connection of the instance cut", f"the run ends {status}", round(detect, 1),
            round(recovered.end_time - restarted_at, 1), -1, -1),
    )  # fmt: skip
