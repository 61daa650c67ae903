"""Profile settings that are not per-store facts (those — time zone, sales channels — live in
IntegrationConfig). Defaults are the spec's; every field can be overridden from Dagster run config."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

DEFAULT_EXCLUDED_STATUSES = ["canceled", "cancel", "cancellation-requested", "request-cancel"]


class ProfileSettings(BaseModel):
    """How purchases are selected and scored, and how much history is kept."""

    excluded_statuses: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDED_STATUSES),
        description="order statuses that are not purchases (compared case-insensitively)",
    )
    f_thresholds: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4, 6],
        description=(
            "minimum purchase count for F = 1..5: the default [1, 2, 3, 4, 6] reads "
            "1 -> 1, 2 -> 2, 3 -> 3, 4-5 -> 4, 6+ -> 5"
        ),
    )
    resolution_warn_threshold: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="the resolution check warns when fewer purchases than this share resolve to a customer",
    )
    history_days: int = Field(
        default=60,
        ge=0,
        description="days of customer_profile_history kept before the latest as_of (0 = no history)",
    )
    rfm_segments_csv: str | None = Field(
        default=None,
        description="group/segment names file; default sql/seeds/rfm_segments.csv",
    )
    memory_limit: str | None = Field(
        default=None, description="DuckDB memory_limit while computing, e.g. '3GB' (None: unchanged)"
    )

    @field_validator("excluded_statuses")
    @classmethod
    def _statuses(cls, v: list[str]) -> list[str]:
        return [s.strip().lower() for s in v if s and s.strip()]

    @field_validator("f_thresholds")
    @classmethod
    def _thresholds(cls, v: list[int]) -> list[int]:
        if len(v) != 5 or v[0] != 1 or any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(
                "f_thresholds must be 5 strictly increasing counts starting at 1, e.g. [1,2,3,4,6]"
            )
        return v

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", v.strip()):
            raise ValueError(f"memory_limit {v!r} must look like '3GB' or '512MB'")
        return v.strip() if v else v

    @field_validator("rfm_segments_csv")
    @classmethod
    def _csv(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"rfm_segments_csv {v!r} is not a file")
        return v
