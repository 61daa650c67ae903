"""Safe points for a cancel: SIGINT/SIGTERM held back while a unit of work finishes, then delivered.

Dagster cancels a run by interrupting its worker wherever it is. Most of the pipeline does not care
(a DuckDB transaction rolls back), but two things must happen together or not at all: an icomm batch sent
and its confirmation recorded (else the next run sends it again), and a chunk of orders written with its
partitions marked synced. Inside `deferred_interrupts()` a signal is remembered, and raised through the
handler that was in place (Dagster's, which turns it into a run interruption) when the block ends.
No Dagster import: the sync and export modules use it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends (main thread only; elsewhere signals never arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, FrameType | None]] = []

    def _remember(signum: int, frame: FrameType | None) -> None:
        pending.append((signum, frame))

    previous = {s: signal.signal(s, _remember) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signum, frame = pending[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)  # Dagster's handler raises the interruption here
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
