"""Progress lines for long syncs: records done, rate and time left, at most every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Listener = Callable[[str, int, "int | None", "float | None"], None]
_listeners: list[Listener] = []


def add_listener(fn: Listener) -> None:
    """Receive every progress report of this process unthrottled (the CLI draws a progress bar)."""
    _listeners.append(fn)


def remove_listener(fn: Listener) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


class ProgressLog:
    """A `progress(label, done, total)` callback that writes throttled lines to `emit`."""

    def __init__(self, emit: Callable[[str], None], every_seconds: float = 10.0) -> None:
        self.emit = emit
        self.every = every_seconds
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, label: str, done: int, total: int | None, fraction: float | None = None) -> None:
        """`fraction` (0..1) is the share of the run's time range covered, when `total` is unknown."""
        for listener in list(_listeners):
            listener(label, done, total, fraction)
        now = time.monotonic()
        start = self.started.setdefault(label, now)
        finished = (total is not None and done >= total) or (fraction is not None and fraction >= 1.0)
        if not finished and now - self.last.get(label, 0.0) < self.every:
            return
        self.last[label] = now
        elapsed = now - start
        if elapsed < 1.0:
            self.emit(f"{label}: {done:,}" + (f"/{total:,}" if total else "") + " done")
            return
        rate = done / elapsed
        if total:
            left = (total - done) / rate if rate > 0 else float("inf")
            self.emit(
                f"{label}: {done:,}/{total:,} ({100 * done / total:.0f}%), {rate:,.1f}/s, ~{left:,.0f}s left"
            )
        elif fraction:
            left = elapsed * (1 - fraction) / fraction
            self.emit(
                f"{label}: {done:,} so far ({100 * fraction:.0f}% of the range), {rate:,.1f}/s, ~{left:,.0f}s left"
            )
        else:
            self.emit(f"{label}: {done:,} so far, {rate:,.1f}/s")
