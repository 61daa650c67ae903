"""`DefaultRunLauncher` with a run-worker health check, so Dagster's run monitoring can fail dead runs.

With a gRPC code server, `DefaultRunLauncher` asks the server to start each run as its subprocess. When
the server and its workers die together (a `docker compose up -d` that recreates `code`, an OOM kill of
the container, a reboot) nobody reports the run: it stays STARTED, keeps its `duckdb_<name>` slot, and
the account's schedule skips every tick. Dagster's run monitoring fails such runs only when the launcher
can check a worker, which `DefaultRunLauncher` cannot. This one can:

- a run executed by the code location's executor beats (`vtex_pipeline/heartbeat.py`): RUNNING while its
  last beat is younger than `stale_after_seconds`, FAILED once older (or when it never beat for that long
  after starting), so run monitoring marks it failed, frees its slot after
  `free_slots_after_run_end_seconds`, and `run_retries` re-launches it (the sync resumes from its
  watermarks);
- a run that `vtex-pipeline run` executes in its own process (tagged with host and pid): FAILED once that
  pid is gone on this host, like the CLI's own `release_dead_runs`; RUNNING when on another host.

The heartbeat, not the code server, is asked because the server `deploy/` runs (`dagster code-server
start`) is a proxy that does not list its runs, and after a restart it knows none of them anyway.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any, Self

from dagster import DagsterRun, DefaultRunLauncher, Field, IntSource
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._serdes import ConfigurableClassData

from vtex_pipeline.heartbeat import HEARTBEAT_SECONDS, HEARTBEAT_TAG

# the CLI's run tags (runner.py): the process that executes a `vtex-pipeline run`
PID_TAG = "vtex_pipeline/pid"
HOST_TAG = "vtex_pipeline/host"
DEFAULT_STALE_AFTER_SECONDS = 4 * HEARTBEAT_SECONDS


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
        stale_after_seconds: int = DEFAULT_STALE_AFTER_SECONDS,
    ):
        super().__init__(inst_data=inst_data)
        self._stale_after = stale_after_seconds

    @classmethod
    def config_type(cls) -> dict:
        return {
            "stale_after_seconds": Field(
                IntSource,
                is_required=False,
                default_value=DEFAULT_STALE_AFTER_SECONDS,
                description="A run whose worker has not beaten for this long is failed (it beats every 30 s).",
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
        pid = tags.get(PID_TAG, "")
        if pid.isdigit():  # a `vtex-pipeline run` process
            if tags.get(HOST_TAG) != socket.gethostname():
                return CheckRunHealthResult(
                    WorkerStatus.RUNNING, "a CLI run of another host: nothing to check"
                )
            if pid_alive(int(pid)):
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the process that ran it (pid {pid}) is gone: killed or crashed"
            )
        now = time.time()
        beat = tags.get(HEARTBEAT_TAG, "")
        if beat.isdigit():
            age = now - int(beat)
            if age <= self._stale_after:
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"last heartbeat {int(age)} s ago")
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"no heartbeat from its run worker for {int(age)} s: the worker is gone (its code server "
                "restarted, or its container was recreated or killed)",
            )
        record = self._instance.get_run_record_by_id(run.run_id) if self.has_instance else None
        started = record.start_time if record is not None else None
        if started is not None and now - started > self._stale_after:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"started {now - started:.0f} s ago and its run worker never beat: the worker is gone",
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING, "starting: no heartbeat yet")
