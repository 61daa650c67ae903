"""`DefaultRunLauncher` with a run-worker health check, so Dagster's run monitoring can fail dead runs.

With a gRPC code server, `DefaultRunLauncher` asks the server to start each run as its subprocess. When
the server and its workers die together (a `docker compose up -d` that recreates `code`, an OOM kill of
the container, a reboot) nobody reports the run: it stays STARTED and keeps its `duckdb_<name>` slot,
and the account's schedule skips every tick. Dagster's run monitoring fails such runs only when the
launcher can check a worker, which `DefaultRunLauncher` cannot. This one can, with what the code server
already answers: `GetCurrentRuns` lists the runs it is executing.

- the server lists the run: RUNNING;
- the server answers but does not list it (it restarted, or the worker died): FAILED, so the daemon's
  run monitoring marks the run failed, frees its slot after `free_slots_after_run_end_seconds`, and
  `run_retries` re-launches it (the sync resumes from its watermarks);
- the server does not answer: RUNNING during `unreachable_grace_seconds` (a restart takes seconds), then
  FAILED, since a server that stays away for minutes took its workers with it.

Runs that `vtex-pipeline run` executes in its own process (no server: tagged with host and pid) are
FAILED once that pid is gone on this host, like the CLI's own `release_dead_runs`.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any, Self

from dagster import DagsterRun, DefaultRunLauncher, Field, IntSource
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes import ConfigurableClassData

# the CLI's run tags (runner.py): the process that executes a `vtex-pipeline run`
PID_TAG = "vtex_pipeline/pid"
HOST_TAG = "vtex_pipeline/host"
DEFAULT_GRACE_SECONDS = 120


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class MonitoredRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose workers run monitoring can check (see the module docstring)."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        unreachable_grace_seconds: int = DEFAULT_GRACE_SECONDS,
    ):
        super().__init__(inst_data=inst_data)
        self._grace = unreachable_grace_seconds
        self._unreachable_since: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def config_type(cls) -> dict:
        return {
            "unreachable_grace_seconds": Field(
                IntSource, is_required=False, default_value=DEFAULT_GRACE_SECONDS
            )
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        tags = run.tags
        if GRPC_INFO_TAG in tags:
            return self._check_code_server(run.run_id, json.loads(tags[GRPC_INFO_TAG]))
        pid = tags.get(PID_TAG, "")
        if pid.isdigit() and tags.get(HOST_TAG) == socket.gethostname():
            if pid_alive(int(pid)):
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the process that ran it (pid {pid}) is gone: killed or crashed"
            )
        # another host's CLI run, or a run of unknown origin: nothing to check it with
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker to check")

    def _check_code_server(self, run_id: str, info: Mapping[str, Any]) -> CheckRunHealthResult:
        from dagster._grpc.client import DagsterGrpcClient
        from dagster._grpc.types import GetCurrentRunsResult
        from dagster._serdes import deserialize_value

        where = f"{info.get('host')}:{info.get('port') or info.get('socket')}"
        client = DagsterGrpcClient(
            port=info.get("port"),
            socket=info.get("socket"),
            host=info.get("host", "localhost"),
            use_ssl=bool(info.get("use_ssl", False)),
        )
        try:
            current = deserialize_value(client.get_current_runs(), GetCurrentRunsResult).current_runs
        except Exception as exc:  # unreachable or restarting: wait out the grace period
            now = time.monotonic()
            with self._lock:
                first = self._unreachable_since.setdefault(run_id, now)
            away = now - first
            if away < self._grace:
                return CheckRunHealthResult(
                    WorkerStatus.RUNNING,
                    f"code server {where} unreachable for {away:.0f} s ({type(exc).__name__}); "
                    f"failing the run after {self._grace} s",
                    transient=True,
                )
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"code server {where} unreachable for {away:.0f} s: its run workers are gone with it",
            )
        with self._lock:
            self._unreachable_since.pop(run_id, None)
        if run_id in current:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"code server {where} runs it")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"code server {where} no longer runs it: the server restarted or the run worker died",
        )
