"""BG/NBD (Fader, Hardie & Lee 2005) and MBG/NBD (Batislam, Denizel & Filiztekin 2007) purchase models.

Both share the Poisson/gamma purchase process (rate lambda ~ Gamma(r, alpha)) and a beta-geometric dropout
(p ~ Beta(a, b)); they differ only in when a customer may drop out: BG/NBD after each *repeat* purchase,
MBG/NBD also right after the first one. That difference is a shift `s` (0 for BG/NBD, 1 for MBG/NBD) in
the beta-function arguments, so one code path serves both:

    L = B(a, b+x+s)/B(a,b) * G * (alpha+T)^-(r+x) + [x>0 or s=1] * B(a+1, b+x-1+s)/B(a,b) * G * (alpha+t_x)^-(r+x)
    with G = Gamma(r+x) alpha^r / Gamma(r).

Everything is evaluated in log space (gammaln, betaln, logaddexp, log1p) so large x and T neither
overflow nor lose the second term. Time is in whatever unit x, t_x, T use; `alpha` is in that unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln, expit, gammaln, hyp2f1, psi

from vtex_pipeline.predictions.arrays import distinct_x, finite_positive
from vtex_pipeline.predictions.names import TRANSACTION_MODELS

# Below this distance from a = 1 the factor 1/(a - 1) of the expectation formulas is 0/0 in floating
# point; the expectation is smooth in a, so it is evaluated at a = 1 -/+ this and averaged (error ~1e-10).
_A_NEAR_ONE = 1e-6


class TransactionParams(NamedTuple):
    """r, alpha (time unit of the data), a, b: all strictly positive."""

    r: float
    alpha: float
    a: float
    b: float

    def check(self) -> TransactionParams:
        """Refuse parameters no fit can return, so scoring never turns them into numbers."""
        return TransactionParams(*finite_positive("transaction", self._asdict()))


def shift(model: str) -> int:
    """0 for BG/NBD, 1 for MBG/NBD (see the module docstring)."""
    if model == "bgnbd":
        return 0
    if model == "mbgnbd":
        return 1
    raise ValueError(f"unknown transaction model {model!r}; expected one of {TRANSACTION_MODELS}")


def _arrays(*values: ArrayLike) -> list[NDArray[np.float64]]:
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in values))
    return [np.asarray(a) for a in arrays]


def log_likelihood(
    model: str, params: TransactionParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """Per-customer log-likelihood of (x, t_x, T); sum it (times weights) for the sample's."""
    s = shift(model)
    r, alpha, a, b = params.check()
    x_, t_x_, T_ = _arrays(x, t_x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        head = gammaln(r + x_) - gammaln(r) + r * math.log(alpha) - betaln(a, b)
        first = betaln(a, b + x_ + s) - (r + x_) * np.log(alpha + T_)
        second = betaln(a + 1.0, b + x_ - 1.0 + s) - (r + x_) * np.log(alpha + t_x_)
        if s == 0:
            second = np.where(x_ > 0, second, -np.inf)
        return head + np.logaddexp(first, second)


def _log_odds_dead(
    s: int,
    params: TransactionParams,
    x: NDArray[np.float64],
    t_x: NDArray[np.float64],
    T: NDArray[np.float64],
) -> NDArray[np.float64]:
    """log of a/(b+x-1+s) * ((alpha+T)/(alpha+t_x))^(r+x), the odds of having dropped out; -inf for
    BG/NBD one-time buyers (they cannot have dropped out)."""
    r, alpha, a, b = params
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = math.log(a) - np.log(b + x - 1.0 + s) + (r + x) * np.log1p((T - t_x) / (alpha + t_x))
    if s == 0:
        odds = np.where(x > 0, odds, -np.inf)
    return odds


def p_alive(
    model: str, params: TransactionParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """P(still active | x, t_x, T). BG/NBD returns exactly 1 for x = 0; MBG/NBD does not."""
    s = shift(model)
    params = params.check()
    x_, t_x_, T_ = _arrays(x, t_x, T)
    return expit(-_log_odds_dead(s, params, x_, t_x_, T_))


def expected_repeat_purchases(
    model: str, params: TransactionParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, t: float
) -> NDArray[np.float64]:
    """E[number of repeat purchases in (T, T + t] | x, t_x, T] = P(alive) * E[... | alive]."""
    x_, t_x_, T_ = _arrays(x, t_x, T)
    return expected_purchases_if_alive(model, params, x_, T_, t) * p_alive(model, params, x_, t_x_, T_)


def expected_purchases_if_alive(
    model: str, params: TransactionParams, x: ArrayLike, T: ArrayLike, t: float
) -> NDArray[np.float64]:
    """E[number of repeat purchases in (T, T + t] | alive at T, x, T]; it does not depend on t_x, so a
    scorer can evaluate it once per distinct (x, T).

    The literature's form is (a+b+x-1+s)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+s; a+b+x-1+s; z)],
    z = t/(alpha+T+t). That 2F1 diverges like (1-z)^(a-1-r-x), and the product is 0 * inf once the power
    underflows; Euler's transformation 2F1(A,B;c;z) = (1-z)^(c-A-B) 2F1(c-A,c-B;c;z) cancels the power
    exactly, leaving (1-z)^(a-1) 2F1(a+b-1+s-r, a-1; a+b+x-1+s; z), which tends to 1 as x grows. The
    bracket divided by (a-1) is written with expm1 so the a -> 1 limit does not cancel catastrophically.
    """
    s = shift(model)
    params = params.check()
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"horizon t must be finite and >= 0, got {t}")
    x_, T_ = _arrays(x, T)
    if abs(params.a - 1.0) < _A_NEAR_ONE:
        lo, hi = (params._replace(a=1.0 + d) for d in (-_A_NEAR_ONE, _A_NEAR_ONE))
        return 0.5 * (_if_alive(s, lo, x_, T_, t) + _if_alive(s, hi, x_, T_, t))
    return _if_alive(s, params, x_, T_, t)


def _if_alive(
    s: int, params: TransactionParams, x: NDArray[np.float64], T: NDArray[np.float64], t: float
) -> NDArray[np.float64]:
    r, alpha, a, b = params
    am1 = a - 1.0
    c = a + b + x - 1.0 + s
    z = t / (alpha + T + t)
    log1mz = -np.log1p(t / (alpha + T))
    tail = hyp2f1(a + b - 1.0 + s - r, am1, c, z)
    power = np.exp(am1 * log1mz)
    return c * (-np.expm1(am1 * log1mz) - power * (tail - 1.0)) / am1


def median_time_to_next_purchase(
    params: TransactionParams, x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """Median wait from T to the next purchase of a customer known to be alive: given alive, lambda is
    Gamma(r+x, alpha+T), so the wait is Lomax and its median is (alpha+T)(2^(1/(r+x)) - 1). Same for both
    models (they differ only in dropout)."""
    r, alpha, _, _ = params.check()
    x_, T_ = _arrays(x, T)
    return (alpha + T_) * np.expm1(math.log(2.0) / (r + x_))


@dataclass(frozen=True)
class GroupedData:
    """Grouped summaries prepared for repeated likelihood evaluations.

    Per-x terms (gammaln, betaln, digamma) are computed once per distinct x and the logs once per distinct
    T and t_x, then gathered; sums over groups sharing an x, T or t_x go through bincount. What is left per
    group and evaluation is one exp, one log1p and a few dozen cheap array operations.
    """

    x: NDArray[np.float64]
    weights: NDArray[np.float64]
    x_values: NDArray[np.float64]
    x_index: NDArray[np.intp]
    x_weights: NDArray[np.float64]
    T_values: NDArray[np.float64]
    T_index: NDArray[np.intp]
    t_x_values: NDArray[np.float64]
    t_x_index: NDArray[np.intp]
    total_weight: float

    @classmethod
    def build(
        cls,
        x: NDArray[np.float64],
        t_x: NDArray[np.float64],
        T: NDArray[np.float64],
        weights: NDArray[np.float64],
    ) -> GroupedData:
        x_values, x_index, x_weights = distinct_x(x, weights)
        T_values, T_index = np.unique(T, return_inverse=True)
        t_x_values, t_x_index = np.unique(t_x, return_inverse=True)
        return cls(
            x=x,
            weights=weights,
            x_values=x_values,
            x_index=x_index,
            x_weights=x_weights,
            T_values=T_values,
            T_index=T_index,
            t_x_values=t_x_values,
            t_x_index=t_x_index,
            total_weight=float(weights.sum()),
        )


def negative_log_likelihood(
    s: int, log_params: NDArray[np.float64], data: GroupedData
) -> tuple[float, NDArray[np.float64]]:
    """Mean negative log-likelihood per customer and its gradient with respect to log(r, alpha, a, b).

    Per group the likelihood is head(x) + log(e^A2 + e^A3). With gap = A3 - A2 and the second term's share
    w3 = e^A3 / (e^A2 + e^A3), the analytic gradient is, e.g., d/dr = psi(r+x) - psi(r) + log alpha
    - (1 - w3) log(alpha+T) - w3 log(alpha+t_x); alpha, a and b likewise.
    """
    r, alpha, a, b = np.exp(log_params)
    xv, W = data.x_values, data.total_weight
    with np.errstate(divide="ignore", invalid="ignore"):
        beta_ab = betaln(a, b)
        b2 = betaln(a, b + xv + s) - beta_ab
        b3 = betaln(a + 1.0, b + xv - 1.0 + s) - beta_ab
        psi_abx = psi(a + b + xv + s)
        da2 = psi(a) - psi_abx
        da3 = psi(a + 1.0) - psi_abx
        db2 = psi(b + xv + s) - psi_abx
        db3 = psi(b + xv - 1.0 + s) - psi_abx
    if s == 0:  # BG/NBD one-time buyers have no second term (and b + x - 1 may be <= 0 there)
        none = xv == 0
        b3 = np.where(none, -np.inf, b3)
        da3 = np.where(none, 0.0, da3)
        db3 = np.where(none, 0.0, db3)
    log_aT = np.log(alpha + data.T_values)
    log_atx = np.log(alpha + data.t_x_values)
    xi, Ti, ti, w = data.x_index, data.T_index, data.t_x_index, data.weights
    rx = data.x + r
    lT = log_aT[Ti]
    first = b2[xi] - rx * lT
    gap = (b3 - b2)[xi] - rx * (log_atx[ti] - lT)  # -inf for BG/NBD one-time buyers
    small = np.exp(-np.abs(gap))  # ratio of the smaller term to the larger, in [0, 1]
    top = first + np.maximum(gap, 0.0) + np.log1p(small)
    share = 1.0 / (1.0 + small)
    w3 = np.where(gap > 0.0, share, small * share)
    ww3 = w * w3
    ww2 = w - ww3
    ll = np.dot(w, top) + np.dot(data.x_weights, gammaln(r + xv) - gammaln(r)) + W * r * math.log(alpha)
    by_x3 = np.bincount(xi, weights=ww3, minlength=xv.size)
    by_x2 = data.x_weights - by_x3
    by_T2 = np.bincount(Ti, weights=ww2, minlength=log_aT.size)
    by_t3 = np.bincount(ti, weights=ww3, minlength=log_atx.size)
    by_T2_rx = np.bincount(Ti, weights=ww2 * rx, minlength=log_aT.size)
    by_t3_rx = np.bincount(ti, weights=ww3 * rx, minlength=log_atx.size)
    d_r = (
        np.dot(data.x_weights, psi(r + xv) - psi(r)) + W * math.log(alpha) - by_T2 @ log_aT - by_t3 @ log_atx
    )
    d_alpha = (
        W * r / alpha
        - by_T2_rx @ (1.0 / (alpha + data.T_values))
        - by_t3_rx @ (1.0 / (alpha + data.t_x_values))
    )
    psi_ab = psi(a + b)
    d_a = by_x2 @ da2 + by_x3 @ da3 - W * (psi(a) - psi_ab)
    d_b = by_x2 @ db2 + by_x3 @ db3 - W * (psi(b) - psi_ab)
    grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b], dtype=np.float64)
    return -float(ll) / W, -grad / W
