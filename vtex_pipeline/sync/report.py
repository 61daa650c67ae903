"""What a sync pass did, in numbers an operator can read in the run's metadata."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncReport:
    source: str
    counts: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[str | None, str]] = field(default_factory=list)  # (record id, reason)
    started: float = field(default_factory=time.monotonic)
    api: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def rejected_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, reason in self.rejected:
            short = reason.split(":")[0][:80]
            out[short] = out.get(short, 0) + 1
        return out
