"""A `vtex-pipeline run` killed with SIGKILL keeps its `duckdb` pool slot in DAGSTER_HOME; the next run
must release it, or it waits for that slot forever (found by `make chaos`, "SIGKILL mid raw partition")."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from vtex_pipeline.runner import HOST_TAG, PID_TAG, release_dead_runs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_runs_pool_slot_is_released_and_a_live_one_kept() -> None:
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("duckdb_vtex", 1)
        host = socket.gethostname()
        dead = create_run_for_test(
            instance,
            job_name="vtex_raw_sync",
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(_dead_pid()), HOST_TAG: host},
        )
        alive = create_run_for_test(
            instance,
            job_name="vtex_raw_sync",
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(os.getppid()), HOST_TAG: host},
        )
        assert storage.claim_concurrency_slot("duckdb_vtex", dead.run_id, "vtex__raw_orders").is_claimed

        assert release_dead_runs(instance) == [dead.run_id]

        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
        assert storage.get_concurrency_info("duckdb_vtex").active_slot_count == 0
        assert release_dead_runs(instance) == []
