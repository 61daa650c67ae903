"""What the transaction (BG/NBD) and spend (Gamma-Gamma) models share: checking fitted parameters and
grouping customers by their number of repeat purchases, the one input whose terms are worth computing once."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray


def finite_positive(what: str, params: Mapping[str, float]) -> tuple[float, ...]:
    """The parameters as floats, in order; ValueError unless all are finite and > 0 (no fit returns such)."""
    values = tuple(float(v) for v in params.values())
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{what} parameters must be finite and > 0, got {dict(params)}")
    return values


def distinct_x(
    x: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.float64]]:
    """x's distinct values, each row's index into them and the weight on each distinct value."""
    x_values, x_index = np.unique(x, return_inverse=True)
    return x_values, x_index, np.bincount(x_index, weights=weights, minlength=x_values.size)
