"""Numeric settings bounded alike in `IntegrationConfig` and `IcommSettings`: one definition each, with a
message that names the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _positive(v: float, info: ValidationInfo) -> float:
    if v <= 0:
        raise ValueError(f"{info.field_name} must be > 0")
    return v


def _at_least_one(v: int, info: ValidationInfo) -> int:
    if v < 1:
        raise ValueError(f"{info.field_name} must be >= 1")
    return v


Positive = Annotated[float, AfterValidator(_positive)]
AtLeastOne = Annotated[int, AfterValidator(_at_least_one)]
