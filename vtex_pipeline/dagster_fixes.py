"""One fix to Dagster 1.13, applied when the definitions load (code server, run workers, the CLI).

A step waiting for a pool slot must sleep between claims. Dagster 1.13's
`InstanceConcurrencyContext.interval_to_next_pending_claim_check` returns `min([0, *waits])`, which is
never positive, so `ActiveExecution.sleep_til_ready` never sleeps: a run whose step waits for its
account's `duckdb_<name>` slot (held by another run, or by a dead one until run monitoring frees it)
spins a core at 100% (measured: 99% CPU for the whole wait). The intended value is the time until the
next claim is due, `max(0, min(waits))`. `vtex_pipeline_tests/test_dagster_fixes.py` fails once Dagster
ships the fix, so this module can be deleted then.
"""

from __future__ import annotations

import time

from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if not self._pending_claims:
        return 0.0
    now = time.time()
    waits = [ready_at - now for ready_at in self._pending_timeouts.values()]
    return max(0.0, min(waits)) if waits else 0.0


ORIGINAL = InstanceConcurrencyContext.interval_to_next_pending_claim_check


def apply() -> None:
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = _interval_to_next_pending_claim_check


apply()
