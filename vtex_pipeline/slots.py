"""Who holds an account's `duckdb_<name>` pool slot, and a wait for it that an operator can follow.

Dagster says a step is "blocked by pool"; it does not say by which run. A schedule that skips, `doctor`,
and `vtex-pipeline run` waiting for the slot all name the run holding it and since when, so a stuck
account is never a silent stop nor a silent wait.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg


@dataclass(frozen=True)
class SlotHolder:
    run_id: str
    job_name: str
    status: str
    step_key: str
    since: datetime | None  # when the run took the slot (else when it started), UTC

    def describe(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        when = ""
        if self.since is not None:
            minutes = max(0, int((now - self.since).total_seconds() // 60))
            when = f" since {self.since:%Y-%m-%d %H:%M:%S} UTC ({minutes} min)"
        return f"run {self.run_id} ({self.job_name}, {self.status}, step {self.step_key}){when}"


def slot_holders(instance: dg.DagsterInstance, pool: str, exclude_run: str | None = None) -> list[SlotHolder]:
    """The runs holding a slot of `pool` now (empty when free or when the storage has no pools)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    assigned = {
        (p.run_id, p.step_key): p.assigned_timestamp for p in info.pending_steps if p.assigned_timestamp
    }
    holders = []
    for slot in info.claimed_slots:
        if slot.run_id == exclude_run:
            continue
        record = instance.get_run_record_by_id(slot.run_id)
        since = assigned.get((slot.run_id, slot.step_key))
        if since is None and record is not None and record.start_time:
            since = datetime.fromtimestamp(record.start_time, UTC)
        holders.append(
            SlotHolder(
                run_id=slot.run_id,
                job_name=record.dagster_run.job_name if record else "?",
                status=record.dagster_run.status.value if record else "deleted",
                step_key=slot.step_key,
                since=since.astimezone(UTC) if since else None,
            )
        )
    return holders


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while waiting: nothing was started, nothing to undo."""


def wait_for_free_slot(
    instance: dg.DagsterInstance,
    pool: str,
    *,
    say: Callable[[str], None],
    poll_seconds: float = 2.0,
    report_every_seconds: float = 60.0,
    timeout_seconds: float | None = None,
) -> float:
    """Block until no run holds `pool`, sleeping between polls (no busy loop), telling `say` who holds it
    at once and then every `report_every_seconds`. SIGINT/SIGTERM end the wait with `Interrupted` within
    a poll. Returns the seconds waited. Only for the main thread of a CLI process: it installs handlers."""
    stop = threading.Event()
    received: list[int] = []

    def _handler(signum, _frame):
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    last_report = -report_every_seconds
    try:
        while True:
            holders = slot_holders(instance, pool)
            if not holders:
                return time.monotonic() - started
            waited = time.monotonic() - started
            if waited - last_report >= report_every_seconds:
                last_report = waited
                say(f"waiting for pool {pool}: held by " + "; ".join(h.describe() for h in holders))
            if timeout_seconds is not None and waited >= timeout_seconds:
                raise TimeoutError(f"pool {pool} still held after {waited:.0f} s")
            if stop.wait(poll_seconds):
                name = signal.Signals(received[0]).name
                raise Interrupted(f"{name} while waiting for pool {pool}: nothing was started")
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
