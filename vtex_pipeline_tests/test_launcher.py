"""MonitoredRunLauncher's worker health check: what run monitoring is told for each kind of run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import dagster as dg
from dagster._core.launcher import WorkerStatus
from dagster._core.test_utils import create_run_for_test

from vtex_pipeline.heartbeat import HEARTBEAT_TAG, _beat
from vtex_pipeline.launcher import HOST_TAG, PID_TAG, MonitoredRunLauncher

INSTANCE = {"run_launcher": {"module": "vtex_pipeline.launcher", "class": "MonitoredRunLauncher",
                             "config": {"stale_after_seconds": 120}}}  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_each_kind_of_run_gets_the_verdict_its_worker_deserves() -> None:
    with dg.instance_for_test(overrides=INSTANCE) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, MonitoredRunLauncher) and launcher.supports_check_run_worker_health
        now = int(time.time())

        def run(**tags: str) -> dg.DagsterRun:
            return create_run_for_test(
                instance, job_name="vtex_raw_sync", status=dg.DagsterRunStatus.STARTED, tags=tags
            )

        fresh = launcher.check_run_worker_health(run(**{HEARTBEAT_TAG: str(now - 40)}))
        assert fresh.status == WorkerStatus.RUNNING and fresh.msg == "last heartbeat 40 s ago"
        stale = launcher.check_run_worker_health(run(**{HEARTBEAT_TAG: str(now - 121)}))
        assert stale.status == WorkerStatus.FAILED
        assert stale.msg.startswith("no heartbeat from its run worker for 121 s")
        host = socket.gethostname()
        alive = launcher.check_run_worker_health(run(**{PID_TAG: str(os.getpid()), HOST_TAG: host}))
        assert alive.status == WorkerStatus.RUNNING
        dead_pid = _dead_pid()
        dead = launcher.check_run_worker_health(run(**{PID_TAG: str(dead_pid), HOST_TAG: host}))
        assert (dead.status, dead.msg) == (
            WorkerStatus.FAILED,
            f"the process that ran it (pid {dead_pid}) is gone: killed or crashed",
        )
        elsewhere = launcher.check_run_worker_health(run(**{PID_TAG: str(dead_pid), HOST_TAG: "other-host"}))
        assert elsewhere.status == WorkerStatus.RUNNING
        # a run that just started and has not beaten yet is left alone
        assert launcher.check_run_worker_health(run()).status == WorkerStatus.RUNNING


def test_the_heartbeat_thread_writes_the_tag_until_stopped() -> None:
    with dg.instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="j", status=dg.DagsterRunStatus.STARTED)
        stop = threading.Event()
        thread = threading.Thread(target=_beat, args=(instance, run.run_id, stop, 0.2), daemon=True)
        thread.start()
        time.sleep(0.5)
        first = int(instance.get_run_by_id(run.run_id).tags[HEARTBEAT_TAG])
        assert abs(first - time.time()) < 2
        stop.set()
        thread.join(2)
        assert not thread.is_alive()
