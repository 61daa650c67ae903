"""`vtex-pipeline run` when another run holds the account's `duckdb_vtex` slot: it says which run and
since when, sleeps (no core burned), stops at once on SIGTERM with nothing started, and goes on by
itself when the slot is freed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster._core.test_utils import create_run_for_test

from chaos.run import ROOT, Sandbox
from vtex_pipeline.launcher import HOST_TAG, PID_TAG
from vtex_pipeline_tests.helpers import cpu_seconds

POOL = "duckdb_vtex"


def _wait_for_line(log: Path, needle: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if needle in text:
            return text
        assert proc.poll() is None, f"exited {proc.returncode} before {needle!r}:\n{text[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {needle!r} within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def _start_cli(box: Sandbox, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vtex_pipeline.cli", "run", "--as-of", box.now.date().isoformat()]
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=box.env(), stdout=out, stderr=subprocess.STDOUT)


def test_a_run_waiting_for_the_slot_names_the_holder_sleeps_and_stops_on_sigterm(
    sandbox: Callable[..., Sandbox], small_fixture: dict[str, Any]
) -> None:
    box = sandbox(small_fixture)
    with dg.DagsterInstance.from_config(str(box.home)) as instance:
        # a live run of this host (this test's process) holds the slot, as a long sync would
        holder = create_run_for_test(
            instance,
            job_name="vtex_raw_sync",
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
        )
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        assert instance.event_log_storage.claim_concurrency_slot(
            POOL, holder.run_id, "vtex__raw_orders"
        ).is_claimed

        log = box.dir / "waiting.log"
        proc = _start_cli(box, log)
        try:
            text = _wait_for_line(log, f"waiting for pool {POOL}: held by run {holder.run_id}", proc)
            assert "vtex_raw_sync, STARTED, step vtex__raw_orders" in text and " UTC (" in text
            cpu_before, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(5)
            cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - t0)
            assert cpu < 0.1, f"the waiting CLI used {cpu:.0%} of a core"
            stop = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(10)
            stopped_in = time.monotonic() - stop
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text()
        assert rc == 130, text[-2000:]
        assert stopped_in < 5
        assert "SIGTERM while waiting for pool duckdb_vtex: nothing was started" in text
        # nothing was started: no other run in the instance, no raw order written
        assert [r.run_id for r in instance.get_runs()] == [holder.run_id]
        if box.db.exists():
            with duckdb.connect(str(box.db), read_only=True) as conn:
                tables = {
                    r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()
                }
                if "raw_orders" in tables:
                    assert conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0] == 0

        # the holder ends and its slot is freed: a waiting run goes on by itself and syncs everything
        log = box.dir / "resumed.log"
        proc = _start_cli(box, log)
        try:
            _wait_for_line(log, f"held by run {holder.run_id}", proc)
            instance.report_run_failed(holder, "ended by the test")
            instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)
            rc = proc.wait(300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert rc == 0, log.read_text()[-3000:]
    with duckdb.connect(str(box.db), read_only=True) as conn:
        stored = conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0]
    assert stored == len(small_fixture["orders"])
