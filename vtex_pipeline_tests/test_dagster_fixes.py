"""The one patch to Dagster (vtex_pipeline/dagster_fixes.py): a step waiting for a pool slot sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import dagster as dg
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.test_utils import create_run_for_test

from vtex_pipeline import dagster_fixes
from vtex_pipeline_tests.helpers import cpu_seconds


def test_dagster_still_has_the_bug_the_patch_fixes() -> None:
    """Fails once Dagster returns a positive wait itself: then delete vtex_pipeline/dagster_fixes.py."""
    with dg.instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="j")
        ctx = InstanceConcurrencyContext(instance, run)
        ctx._pending_claims.add("step")
        ctx._pending_timeouts["step"] = time.time() + 10
        assert dagster_fixes.ORIGINAL(ctx) <= 0  # Dagster 1.13: never sleeps
        assert 9 < dagster_fixes._interval_to_next_pending_claim_check(ctx) <= 10
        assert InstanceConcurrencyContext.interval_to_next_pending_claim_check is (
            dagster_fixes._interval_to_next_pending_claim_check
        )


WAITER = textwrap.dedent(
    """
    import sys, dagster as dg
    import vtex_pipeline.dagster_fixes  # noqa: F401

    @dg.op(pool="p")
    def step():
        print("step ran", flush=True)

    @dg.job(executor_def=dg.in_process_executor)
    def job():
        step()

    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance)
        sys.exit(0 if result.success else 1)
    """
)


def test_a_run_waiting_for_a_held_pool_slot_sleeps_then_runs(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        holder = create_run_for_test(instance, job_name="other", status=dg.DagsterRunStatus.STARTED)
        instance.event_log_storage.set_concurrency_slots("p", 1)
        assert instance.event_log_storage.claim_concurrency_slot("p", holder.run_id, "x").is_claimed
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-c", WAITER], env=env, stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(6)  # imports, then the wait
            cpu_before, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(6)
            cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - t0)
            assert proc.poll() is None, "the step ran although the slot was held"
            assert cpu < 0.15, f"waiting for the slot used {cpu:.0%} of a core"
            instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0 and "step ran" in out
