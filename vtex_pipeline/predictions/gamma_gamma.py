"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005 "RFM and CLV"; Fader & Hardie 2013 note).

A purchase day's value is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers, so the mean m of a
customer's x repeat purchase days has density

    f(m | x) = Gamma(px+q) / (Gamma(px) Gamma(q)) * gamma^q m^(px-1) x^(px) / (gamma + m x)^(px+q)

and E[M | x, m] = p (gamma + m x) / (p x + q - 1): a weighted mean of the population mean p gamma/(q-1)
and the customer's own m, the weight on m growing with x. Requires q > 1 for a finite mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln, psi

from vtex_pipeline.predictions.arrays import distinct_x, finite_positive


class SpendParams(NamedTuple):
    """p (shape of a purchase day's value), q and gamma (shape and scale of the rate across customers);
    gamma is in the store currency."""

    p: float
    q: float
    gamma: float

    def check(self) -> SpendParams:
        """Refuse parameters with no finite population mean (q <= 1) before they reach a column."""
        values = finite_positive("spend", self._asdict())
        if values[1] <= 1.0:
            raise ValueError(f"spend parameter q must be > 1 for a finite mean value, got {values[1]}")
        return SpendParams(*values)

    @property
    def population_mean(self) -> float:
        """E[value of a purchase day] of a customer about whom nothing is known: p gamma / (q - 1)."""
        p, q, gamma = self.check()
        return p * gamma / (q - 1.0)


def log_likelihood(params: SpendParams, x: ArrayLike, m: ArrayLike) -> NDArray[np.float64]:
    """Per-buyer log-density of the mean repeat value m given x > 0 repeat purchase days."""
    p, q, gamma = (float(v) for v in params)
    x_, m_ = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64))
    px = p * x_
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(gamma)
        + (px - 1.0) * np.log(m_)
        + px * np.log(x_)
        - (px + q) * np.log(gamma + m_ * x_)
    )


def expected_average_value(params: SpendParams, x: ArrayLike, m: ArrayLike) -> NDArray[np.float64]:
    """E[value of a purchase day | x, m]; the population mean p gamma/(q-1) where x = 0 (m is ignored there)."""
    p, q, gamma = params.check()
    x_, m_ = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64))
    repeat = x_ > 0
    m_safe = np.where(repeat, m_, 0.0)
    conditional = p * (gamma + m_safe * x_) / (p * x_ + q - 1.0)
    return np.where(repeat, conditional, p * gamma / (q - 1.0))


@dataclass(frozen=True)
class SpendData:
    """Buyers with x > 0 and m > 0, reduced so an evaluation costs one log over the rows.

    The gammaln/digamma terms depend on x only (computed per distinct x) and sum(w x log m), sum(w log m),
    sum(w x log x) do not depend on the parameters at all.
    """

    x: NDArray[np.float64]
    mx: NDArray[np.float64]
    weights: NDArray[np.float64]
    weighted_x: NDArray[np.float64]
    x_values: NDArray[np.float64]
    x_weights: NDArray[np.float64]
    sum_wx_log_m: float
    sum_w_log_m: float
    sum_wx_log_x: float
    total_weight: float

    @classmethod
    def build(cls, x: NDArray[np.float64], m: NDArray[np.float64], weights: NDArray[np.float64]) -> SpendData:
        x_values, _, x_weights = distinct_x(x, weights)
        log_m = np.log(m)
        return cls(
            x=x,
            mx=m * x,
            weights=weights,
            weighted_x=weights * x,
            x_values=x_values,
            x_weights=x_weights,
            sum_wx_log_m=float((weights * x) @ log_m),
            sum_w_log_m=float(weights @ log_m),
            sum_wx_log_x=float((weights * x) @ np.log(x)),
            total_weight=float(weights.sum()),
        )


def negative_log_likelihood(
    log_params: NDArray[np.float64], data: SpendData
) -> tuple[float, NDArray[np.float64]]:
    """Mean negative log-likelihood per buyer and its gradient with respect to log(p, q, gamma)."""
    p, q, gamma = np.exp(log_params)
    xv, nx, W = data.x_values, data.x_weights, data.total_weight
    log_g = math.log(gamma)
    log_gmx = np.log(gamma + data.mx)
    w, wx = data.weights, data.weighted_x
    sum_w_log = float(np.dot(w, log_gmx))
    sum_wx_log = float(np.dot(wx, log_gmx))
    ll = (
        float(nx @ (gammaln(p * xv + q) - gammaln(p * xv)))
        - W * gammaln(q)
        + W * q * log_g
        + p * data.sum_wx_log_m
        - data.sum_w_log_m
        + p * data.sum_wx_log_x
        - p * sum_wx_log
        - q * sum_w_log
    )
    psi_pxq = psi(p * xv + q)
    d_p = float(nx @ (xv * (psi_pxq - psi(p * xv)))) + data.sum_wx_log_m + data.sum_wx_log_x - sum_wx_log
    d_q = float(nx @ psi_pxq) - W * psi(q) + W * log_g - sum_w_log
    inverse = 1.0 / (gamma + data.mx)
    d_gamma = W * q / gamma - p * float(np.dot(wx, inverse)) - q * float(np.dot(w, inverse))
    grad = np.array([d_p * p, d_q * q, d_gamma * gamma])
    return -ll / W, -grad / W
