"""Draws from the models' generative processes, for the recovery tests and the scale benchmark.

Exact and vectorized, no event loop: with N(T) ~ Poisson(lambda T) purchases by T and K the repeat
purchase after which the customer drops out (geometric: K >= 1 for BG/NBD, K >= 0 for MBG/NBD, which may
drop out right after the first purchase), x = min(K, N(T)); the x-th of N(T) uniform purchase times on
[0, T] is T * Beta(x, N(T) - x + 1). The customer is alive at T iff N(T) < K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vtex_pipeline.predictions.bgnbd import TransactionParams, shift
from vtex_pipeline.predictions.gamma_gamma import SpendParams


@dataclass(frozen=True)
class SimulatedBuyers:
    """Summaries (continuous times) plus what the models predict: alive at T and the purchases after T."""

    x: NDArray[np.float64]
    t_x: NDArray[np.float64]
    T: NDArray[np.float64]
    alive: NDArray[np.bool_]
    future: NDArray[np.float64] | None  # repeat purchases in (T, T + horizon]
    next_wait: NDArray[np.float64]  # time from T to the next purchase (inf once dropped out)


def simulate_transactions(
    model: str,
    params: TransactionParams,
    T: ArrayLike,
    rng: np.random.Generator,
    horizon: float | None = None,
) -> SimulatedBuyers:
    """One customer per entry of T (time since first purchase), drawn from BG/NBD or MBG/NBD."""
    s = shift(model)
    r, alpha, a, b = params.check()
    T_ = np.asarray(T, dtype=np.float64).reshape(-1)
    n = T_.size
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = np.maximum(rng.beta(a, b, n), 1e-300)
    # Inverse-CDF geometric in floats: numpy's integer geometric overflows for the tiny p that Beta(a < 1)
    # produces. Here K counts the purchases before dropping out; BG/NBD customers survive the first one.
    u = 1.0 - rng.random(n)
    K = np.floor(np.log(u) / np.log1p(-p)) + (1 - s)
    bought = rng.poisson(lam * T_).astype(np.float64)
    x = np.minimum(K, bought)
    has = x > 0
    t_x = np.zeros(n)
    t_x[has] = T_[has] * rng.beta(x[has], bought[has] - x[has] + 1.0)
    future = None
    if horizon is not None:
        later = bought + rng.poisson(lam * horizon)
        future = np.minimum(K, later) - x
    alive = bought < K
    # Memoryless: an alive customer's next purchase comes Exp(lambda) after T, whatever happened before.
    next_wait = np.where(alive, rng.exponential(1.0, n) / lam, np.inf)
    return SimulatedBuyers(x, t_x, T_, alive, future, next_wait)


def simulate_spend(params: SpendParams, x: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
    """Mean value m of x > 0 purchase days per customer: nu ~ Gamma(q, gamma), each day ~ Gamma(p, nu),
    so the mean of x days is Gamma(p x, nu x)."""
    p, q, gamma = (float(v) for v in params)
    x_ = np.asarray(x, dtype=np.float64).reshape(-1)
    nu = rng.gamma(q, 1.0 / gamma, x_.size)
    return rng.gamma(p * x_, 1.0 / (nu * x_))
