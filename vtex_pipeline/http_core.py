"""What the VTEX and icomm clients share: pacing (one rate limiter per account), request counters,
`Retry-After` parsing, exponential backoff with full jitter, the attempt budget, the session's
lifecycle and scrubbing secrets out of messages.

A loop in each client drives the retries (what is retryable differs: VTEX maps statuses to
permissions, icomm reads per-contact results); these are the parts that must not differ.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Self

import requests

# Statuses worth another attempt, and the transport failures that are (no answer, or a broken one).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def full_jitter(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry `attempt` (1-based): uniform(0, min(cap, base * 2**(attempt-1)))."""
    return random.uniform(0, min(cap, base * (2 ** (attempt - 1))))


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by `***` (messages that may reach an exception or a log)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class SessionClient:
    """A client's `requests.Session` and secrets: the session is closed only by the client that opened
    it (a caller may lend its own), the client is a context manager, and `scrub` hides its secrets."""

    session: requests.Session
    _owns_session: bool
    _secrets: list[str]

    def _open_session(self, session: requests.Session | None, secrets: Iterable[str]) -> None:
        self._owns_session = session is None
        self.session = session or requests.Session()
        # Real keys/tokens are long; scrubbing a 1-3 character test value would mangle every message.
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def scrub(self, text: str) -> str:
        """Remove the client's secrets from any text that may reach an exception or a log line."""
        return scrub_secrets(text, self._secrets)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Attempts:
    """One call's attempt budget. A 429 means "slow down", not "broken": it does not use up an attempt,
    up to `max_throttled` in a row, so a throttled account waits instead of failing its calls."""

    def __init__(self, limit: int, max_throttled: int) -> None:
        self.limit = max(1, limit)
        self.max_throttled = max_throttled
        self.made = 0  # attempts that count (a throttled one is given back)
        self.throttled_in_a_row = 0

    def start(self) -> None:
        self.made += 1

    def retry(self, throttled: bool) -> bool:
        """After a failed attempt: may the call try again?"""
        if throttled:
            self.throttled_in_a_row += 1
            self.made -= 1
            if self.throttled_in_a_row > self.max_throttled:
                return False
        else:
            self.throttled_in_a_row = 0
        return self.made < self.limit


class RateLimiter:
    """Paces requests at `rate` per second across threads.

    Each acquire takes the next slot, at least 1/rate after the previous request actually left, and
    at least 1 s + `slack` after the request `floor(rate)` sends earlier, so no 1-second window holds
    more than `rate` requests even when network jitter shifts arrivals by a few milliseconds at
    VTEX (or at a test server). The sleep happens under the lock on purpose: a late wake-up only
    widens the gaps, never lets two requests bunch up.
    """

    def __init__(
        self,
        rate: float,
        *,
        slack: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.interval = 1.0 / rate
        self.slack = slack
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0  # earliest time for the next request (pacing)
        self._paused_until = 0.0  # set by defer(); separate so pacing never overwrites a pause
        per_window = math.floor(rate)
        self._recent: deque[float] | None = deque(maxlen=per_window) if per_window >= 1 else None

    def _target(self) -> float:
        target = max(self._next, self._paused_until)
        recent = self._recent
        if recent is not None and len(recent) == recent.maxlen:
            target = max(target, recent[0] + 1.0 + self.slack)
        return target

    def acquire(self) -> float:
        """Block until this caller may send; returns the seconds waited."""
        start = self._clock()
        with self._lock:
            now = self._clock()
            while (target := self._target()) > now:
                self._sleep(target - now)
                now = self._clock()
            self._next = now + self.interval
            if self._recent is not None:
                self._recent.append(now)
        return self._clock() - start

    def defer(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429: the whole account is throttled)."""
        until = self._clock() + max(0.0, seconds)
        # No lock (a holder may be sleeping in acquire); acquire re-reads this after every sleep.
        if until > self._paused_until:
            self._paused_until = until


class RequestStats:
    """Thread-safe counters for observability (Dagster metadata, logs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.throttled = 0
        self.server_errors = 0
        self.rate_limit_wait_seconds = 0.0
        self.by_call: Counter[str] = Counter()

    def record_request(self, call: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_call[call] += 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_throttled(self) -> None:
        with self._lock:
            self.throttled += 1

    def record_server_error(self) -> None:
        with self._lock:
            self.server_errors += 1

    def add_wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self.rate_limit_wait_seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "throttled": self.throttled,
                "server_errors": self.server_errors,
                "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
                "by_call": dict(self.by_call),
            }


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
