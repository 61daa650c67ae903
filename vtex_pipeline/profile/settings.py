"""Profile settings that are not per-store facts (those — time zone, sales channels — live in
IntegrationConfig). Defaults are those of docs/attributes.md; every field can be overridden from Dagster run config."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator, model_validator

from vtex_pipeline.predictions.names import TRANSACTION_MODELS

if TYPE_CHECKING:
    from vtex_pipeline.predictions.fit import PredictionSettings

CLV_MODEL_ENV = "VTEX_PIPELINE_CLV_MODEL"

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

    clv_model: str | None = Field(
        default=None,
        description=(
            "transaction model of the predictions, mbgnbd or bgnbd "
            f"(None: the {CLV_MODEL_ENV} environment variable, else mbgnbd)"
        ),
    )
    prediction_min_buyers: int = Field(
        default=500, ge=1, description="fewer buyers than this: every prediction column is NULL"
    )
    prediction_min_repeat_buyers: int = Field(
        default=50,
        ge=1,
        description="fewer buyers with a repeat purchase day than this: every prediction column is NULL",
    )
    churn_low_min_p_alive: float = Field(
        default=0.7, ge=0.0, le=1.0, description="churn_risk is low when p_alive >= this"
    )
    churn_medium_min_p_alive: float = Field(
        default=0.3, ge=0.0, le=1.0, description="churn_risk is medium when p_alive >= this (else high)"
    )
    backtest_days: int = Field(
        default=90, ge=7, le=730, description="holdout of the predictions back-test: (D - days, D]"
    )
    backtest_warn_share: float = Field(
        default=0.2,
        gt=0.0,
        description="the back-test check warns when |predicted - actual| / actual exceeds this share",
    )

    @model_validator(mode="after")
    def _churn(self) -> ProfileSettings:
        if self.churn_medium_min_p_alive > self.churn_low_min_p_alive:
            raise ValueError("churn_medium_min_p_alive must not exceed churn_low_min_p_alive")
        return self

    @field_validator("clv_model")
    @classmethod
    def _clv_model(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().lower()
        if v not in TRANSACTION_MODELS:
            raise ValueError(f"clv_model must be one of {TRANSACTION_MODELS}, got {v!r}")
        return v

    def transaction_model(self) -> str:
        """clv_model, else VTEX_PIPELINE_CLV_MODEL, else mbgnbd (an invalid variable is an error)."""
        if self.clv_model:
            return self.clv_model
        env = (os.environ.get(CLV_MODEL_ENV) or "").strip().lower() or "mbgnbd"
        if env not in TRANSACTION_MODELS:
            raise ValueError(f"{CLV_MODEL_ENV}={env!r}: must be one of {TRANSACTION_MODELS}")
        return env

    def prediction_settings(self) -> PredictionSettings:
        from vtex_pipeline.predictions.fit import PredictionSettings  # SciPy: only a profile run needs it

        return PredictionSettings(
            model=self.transaction_model(),
            min_buyers=self.prediction_min_buyers,
            min_repeat_buyers=self.prediction_min_repeat_buyers,
            churn_low_min_p_alive=self.churn_low_min_p_alive,
            churn_medium_min_p_alive=self.churn_medium_min_p_alive,
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
