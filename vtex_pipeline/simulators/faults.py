"""Fault injection for the VTEX store simulator.

Real VTEX throttles (429 + Retry-After), trips circuit breakers (503/504), is sometimes slow and
sometimes truncates bodies; the pipeline's client must survive all of that, so the simulator can
reproduce each one deterministically from a seed.

Grammar: comma-separated ``name=value`` pairs, e.g. ``rate429=0.1,retry_after=1,slow=0.02,seed=7``.

Orders Feed v3 knobs (probabilities, drawn from their own seeded stream so adding them never changes the
draws of the others): ``feed_dup`` enqueues an event twice (same eventId, its own handle), as SQS
at-least-once delivery does; ``feed_shuffle`` returns a lot from a shuffled queue instead of oldest
first; ``feed_lost_commit`` answers a commit 200 but keeps the item, so it comes back after the
visibility timeout.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self, TypeVar, cast

T = TypeVar("T")

_NUMBER = {"float": float, "int": int}  # a knob's annotation (a string: annotations are postponed)


@dataclass
class FaultKnobs:
    """Base of both simulators' fault specs, dataclasses of numeric knobs: read from and written back
    to ``name=value,...``, typed by the fields' own annotations (a new knob is one line, no name list).
    The knobs here mean the same in both: throttling, latency and the seed of the draws."""

    _what: ClassVar[str] = "fault"
    rate429: float = 0.0  # share of the API calls answered 429
    storm429: int = 0  # the next N API calls answer 429 (from when the spec is set)
    retry_after: float = 1.0  # Retry-After seconds on those answers (0: no header)
    latency: float = 0.0  # seconds added to every API call
    seed: int = 0  # seed of the random draws

    @classmethod
    def parse(cls, spec: str | None) -> Self:
        """Parse ``name=value,...``; an empty spec means no faults. Unknown names raise ValueError."""
        kinds = {f.name: _NUMBER[str(f.type)] for f in fields(cast(Any, cls)) if not f.name.startswith("_")}
        kw: dict[str, float | int] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(f"fault spec item {part!r} is not name=value")
            if name not in kinds:
                raise ValueError(f"unknown {cls._what} {name!r}; known: {sorted(kinds)}")
            kw[name] = kinds[name](value)
        return cls(**kw)

    def to_spec(self) -> str:
        """The knobs that differ from the defaults, as ``parse`` reads them."""
        default = type(self)()
        return ",".join(
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(cast(Any, self))
            if not f.name.startswith("_") and getattr(self, f.name) != getattr(default, f.name)
        )

    def retry_headers(self) -> dict[str, str]:
        if self.retry_after <= 0:
            return {}
        ra = self.retry_after
        return {"Retry-After": str(int(ra)) if ra == int(ra) else str(ra)}


@dataclass
class FaultDecision:
    """What to do with one /api request."""

    status: int | None = None  # short-circuit with this status (429/503/504)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering
    malformed: bool = False  # truncate the (200) body


@dataclass
class FaultSpec(FaultKnobs):
    """The VTEX simulator's faults (the grammar is in the module docstring)."""

    rate503: float = 0.0
    rate504: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 3.0
    malformed: float = 0.0
    limit_rps: int = 0
    feed_dup: float = 0.0
    feed_shuffle: float = 0.0
    feed_lost_commit: float = 0.0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._feed_rng = random.Random(f"feed-{self.seed}")
        self._storm_left = self.storm429
        self._window: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.to_spec() != ""

    def feed_roll(self, probability: float) -> bool:
        """One draw for a feed knob (thread-safe, deterministic per seed, apart from the /api draws)."""
        if probability <= 0:
            return False
        with self._lock:
            return self._feed_rng.random() < probability

    def feed_shuffled(self, items: list[T]) -> list[T]:
        """`items` shuffled with the feed stream (a copy)."""
        out = list(items)
        with self._lock:
            self._feed_rng.shuffle(out)
        return out

    def decide(self) -> FaultDecision:
        """Draw the fault for the next /api request (thread-safe, deterministic per seed)."""
        with self._lock:
            d = FaultDecision(delay=self.latency)
            if self._storm_left > 0:
                self._storm_left -= 1
                d.status, d.headers = 429, self.retry_headers()
                return d
            if self.limit_rps > 0:
                t = time.monotonic()
                while self._window and t - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.limit_rps:
                    d.status, d.headers = 429, {"Retry-After": "1"}
                    return d
                self._window.append(t)
            r = self._rng.random
            if self.slow and r() < self.slow:
                d.delay += self.slow_seconds
            if self.rate429 and r() < self.rate429:
                d.status, d.headers = 429, self.retry_headers()
            elif self.rate503 and r() < self.rate503:
                d.status = 503
            elif self.rate504 and r() < self.rate504:
                d.status = 504
            elif self.malformed and r() < self.malformed:
                d.malformed = True
            return d
