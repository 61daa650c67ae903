"""The run worker's heartbeat: a run tag the worker rewrites every 30 s for as long as it lives.

Run monitoring needs a way to tell a live run worker from a dead one. Dagster's run launchers for
containers and pods ask Docker or Kubernetes; `DefaultRunLauncher` has nothing to ask, and the code
server that `deploy/` runs (`dagster code-server start`, a proxy) does not list its runs either. So the
worker says it is alive: `vtex_pipeline/heartbeat` holds the epoch second of its last beat, written by
a thread the run's executor starts with the run (before any step waits for its pool slot) and stops with
it. `MonitoredRunLauncher` fails a run whose beat is older than its `stale_after_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.executor_definition import IN_PROC_CONFIG, _core_in_process_executor_creation
from dagster._core.executor.in_process import InProcessExecutor

HEARTBEAT_TAG = "vtex_pipeline/heartbeat"
HEARTBEAT_SECONDS = 30

log = logging.getLogger("vtex_pipeline.heartbeat")


def _beat(instance: dg.DagsterInstance, run_id: str, stop: threading.Event, every: float) -> None:
    while True:
        try:
            instance.add_run_tags(run_id, {HEARTBEAT_TAG: str(int(time.time()))})
        except Exception as exc:  # storage briefly away (PostgreSQL restart): beat again next time
            log.warning("heartbeat of run %s not written: %s", run_id, type(exc).__name__)
        if stop.wait(every):
            return


class HeartbeatInProcessExecutor(InProcessExecutor):
    """Dagster's in-process executor, plus the heartbeat thread for the length of the run."""

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        stop = threading.Event()
        thread = threading.Thread(
            target=_beat,
            args=(plan_context.instance, plan_context.run_id, stop, HEARTBEAT_SECONDS),
            name="vtex-pipeline-heartbeat",
            daemon=True,
        )
        thread.start()
        try:
            yield from super().execute(plan_context, execution_plan)
        finally:
            stop.set()


@dg.executor(name="in_process", config_schema=IN_PROC_CONFIG)
def heartbeat_in_process_executor(init_context) -> HeartbeatInProcessExecutor:
    """The in-process executor (one process per run; the pool serializes the DuckDB writers anyway)
    whose worker writes the heartbeat run monitoring reads."""
    base = _core_in_process_executor_creation(init_context.executor_config)
    return HeartbeatInProcessExecutor(
        retries=base.retries,
        step_dependency_config=base.step_dependency_config,
        marker_to_close=base.marker_to_close,
    )
