"""Helpers shared by the many-accounts daemon test and `benchmarks/multi_account_daemon.py`: processes
in their own groups with logs in files, the instance config of deploy/dagster.yaml on a throwaway
PostgreSQL, an integrations file for N simulated accounts, and what the instance recorded about runs
(start/end, step windows per pool) read back afterwards. No pytest here: the benchmark imports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STEP_END_EVENTS = ("STEP_SUCCESS", "STEP_FAILURE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def wait(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(
        f"{what}: not within {timeout:.0f} s" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


class Processes:
    """Subprocesses each in its own process group, with their output in files; stopped in reverse."""

    def __init__(self, log_dir: Path, marker: str) -> None:
        self.log_dir = log_dir
        self.marker = marker  # an environment entry only our processes (and their children) carry
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.procs[name] = proc
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def wait_ports(self, what: str, ports: Iterable[int], timeout: float, interval: float = 0.5) -> None:
        """Until each of `ports` accepts a connection; fails at once should one of the processes exit."""
        for port in ports:
            wait(f"{what} on {port}", lambda p=port: self.check_alive() or port_open(p), timeout, interval)

    def stop(self, name: str, grace: float = 20) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # children left in the group (run workers)
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            with contextlib.suppress(Exception):
                self.stop(name)
        self._kill_strays()

    def _kill_strays(self) -> None:
        """Descendants that left our process groups (setsid) but still carry our environment marker."""
        needle = self.marker.encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)

    def tail(self, name: str, lines: int = 80) -> str:
        with contextlib.suppress(OSError):
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def dump(self) -> str:
        return "\n".join(f"===== {name} (last lines) =====\n{self.tail(name)}" for name in self.procs)


def drain_runs(instance, timeout: float, interval: float) -> None:
    """Until no run of the instance is queued, starting, started or canceling: what was already
    requested has finished (before the processes are stopped)."""
    import dagster as dg

    in_flight = [
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
    ]  # fmt: skip
    wait("runs in flight to finish",
         lambda: not instance.get_runs(filters=dg.RunsFilter(statuses=in_flight)), timeout, interval)  # fmt: skip


def run_cli(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> str:
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def write_instance(home: Path, *, max_concurrent_runs: int, dequeue_workers: int = 0) -> dict[str, Any]:
    """deploy/dagster.yaml as is (PostgreSQL from DAGSTER_POSTGRES_*, QueuedRunCoordinator launching from
    8 threads, pools default_limit 1, MonitoredRunLauncher, run monitoring and retries), with the run
    limit of this host; `dequeue_workers` > 0 sets the launch threads, < 0 launches one run after the other."""
    cfg = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text(encoding="utf-8"))
    cfg["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    cfg["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    if dequeue_workers > 0:  # launch queued runs from this many threads
        cfg["run_coordinator"]["config"].update(
            {"dequeue_use_threads": True, "dequeue_num_workers": dequeue_workers}
        )
    elif dequeue_workers < 0:  # one after the other (Dagster's default)
        cfg["run_coordinator"]["config"]["dequeue_use_threads"] = False
        cfg["run_coordinator"]["config"].pop("dequeue_num_workers", None)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return cfg


def write_home(tmp: Path, pg_env: dict[str, str] | None) -> Path:
    """DAGSTER_HOME under `tmp`: deploy/dagster.yaml's instance on PostgreSQL (`pg_env`, whose
    DAGSTER_POSTGRES_* the processes get through base_env), or without it the packaged local instance
    (SQLite, what `vtex-pipeline dev` runs)."""
    from vtex_pipeline.instance import packaged_instance_yaml

    home = tmp / "dagster_home"
    if pg_env is not None:
        write_instance(home, max_concurrent_runs=4)
    else:
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text(packaged_instance_yaml(), encoding="utf-8")
    return home


def write_workspace(path: Path, grpc_port: int) -> Path:
    doc = {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": grpc_port, "location_name": "vtex_pipeline"}}
        ]
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def base_env(tmp: Path, pg_env: dict[str, str], home: Path) -> dict[str, str]:
    """The parent's environment minus any VTEX_/ICOMM_/DAGSTER_ setting, plus the instance's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VTEX_", "ICOMM_", "DAGSTER_")) and k != "PYTEST_CURRENT_TEST"
    }
    env.update(pg_env)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "VTEX_PIPELINE_HOME": str(tmp),
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
            "PYTHONUNBUFFERED": "1",
            "VTEX_TEST_MARKER": str(tmp),
        }
    )
    return env


def start_code_server_and_daemon(
    stack: Processes, env: dict[str, str], cwd: Path, grpc_port: int, workspace: Path, bin_dir: Path = BIN
) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    stack.start(
        "code_server",
        [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port),
         "-m", "vtex_pipeline.definitions", "--location-name", "vtex_pipeline"],
        env, cwd,
    )  # fmt: skip
    client = DagsterGrpcClient(port=grpc_port, host="127.0.0.1")
    wait("code server answering", lambda: stack.check_alive() or client.ping("up"), 300, 1)
    stack.start("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], env, cwd)


@dataclass(frozen=True)
class StepWindow:
    run_id: str
    step: str
    pool: str | None
    start: float
    end: float


def step_windows(instance, run) -> list[StepWindow]:
    """Every step of `run` that started: [STEP_START, STEP_SUCCESS/FAILURE] from the event log (a step
    without an end event counts as running until the run's last event), with its pool from the plan."""
    snap = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    pools = {s.key: s.pool for s in snap.steps}
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    last = 0.0
    for e in instance.all_logs(run.run_id):
        last = max(last, e.timestamp)
        ev = e.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type_value == "STEP_START":
            starts.setdefault(ev.step_key, e.timestamp)
        elif ev.event_type_value in STEP_END_EVENTS:
            ends[ev.step_key] = e.timestamp
    return [
        StepWindow(run.run_id, key, pools.get(key), start, ends.get(key, last))
        for key, start in starts.items()
    ]


def pool_overlaps(windows: list[StepWindow]) -> list[tuple[StepWindow, StepWindow]]:
    """Pairs of steps of one pool whose windows intersect (two writers of one DuckDB file at once)."""
    found = []
    by_pool: dict[str, list[StepWindow]] = {}
    for w in windows:
        if w.pool:
            by_pool.setdefault(w.pool, []).append(w)
    for ws in by_pool.values():
        ws.sort(key=lambda w: w.start)
        for i, a in enumerate(ws):
            for b in ws[i + 1 :]:
                if b.start >= a.end:
                    break
                found.append((a, b))
    return found


def run_span(instance, run_id: str) -> tuple[float, float]:
    """(start, end) of a run as the instance recorded them (PIPELINE_START .. PIPELINE_SUCCESS/FAILURE)."""
    record = instance.get_run_record_by_id(run_id)
    start, end = record.start_time, record.end_time
    if start is None or end is None:
        raise AssertionError(f"run {run_id} has no start/end time ({record.dagster_run.status})")
    return start, end


def run_errors(instance, run) -> str:
    msgs = []
    for e in instance.all_logs(run.run_id):
        if e.dagster_event is not None and e.dagster_event.is_failure:
            err = getattr(e.dagster_event.event_specific_data, "error", None)
            msgs.append(err.to_string() if err is not None else str(e.message))
        elif e.level >= 40 and e.user_message:
            msgs.append(e.user_message)
    return f"run {run.run_id} ({run.job_name}, {run.status.value}):\n" + "\n".join(msgs)
