"""Maximum-likelihood fits of the purchase and spend models on grouped summaries, with honest failure.

Inputs are grouped rows (x, t_x, T, weights = buyers sharing them), so a store with 10^6 buyers is fitted
on the few hundred thousand distinct rows the warehouse returns. Parameters are optimized in log space
(L-BFGS-B with analytic gradients), then polished by Newton steps on a finite-difference Hessian of that
gradient; the same Hessian gives standard errors. A fit that did not reach a strict interior maximum is
returned with `params=None` and a reason, never with the last iterate dressed up as an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from vtex_pipeline.predictions import bgnbd, gamma_gamma
from vtex_pipeline.predictions.bgnbd import TRANSACTION_MODELS, TransactionParams
from vtex_pipeline.predictions.gamma_gamma import SpendParams

Objective = Callable[[NDArray[np.float64]], tuple[float, NDArray[np.float64]]]

# Search box in log space, relative to the data's scale for alpha and gamma: 12 orders of magnitude is
# far wider than any real store, so an estimate on the box means the likelihood kept improving towards
# a degenerate limit (e.g. b -> infinity: nobody ever drops out), not that the box was too tight.
_BOX = math.log(1e6)
_AT_BOUND = 1e-3  # log units
# Largest |gradient| (mean log-likelihood per customer, per log parameter) still called a maximum.
_GRADIENT_TOLERANCE = 1e-6
_HESSIAN_STEP = 1e-4
# Largest standard error of log(parameter) still called an estimate: e^3 ~ 20-fold uncertainty at one
# standard error. Legitimate fits sit far below (CDNOW: <= 0.3; simulated 500-buyer stores: <= 1.3); a
# stopping point on a likelihood ridge towards a degenerate limit (no heterogeneity: r, alpha -> infinity,
# or a, b -> infinity) sits far above (10-20).
_MAX_LOG_STANDARD_ERROR = 3.0


@dataclass(frozen=True)
class PredictionSettings:
    """Model choice and the data minimums (defaults: docs/attributes.md)."""

    model: str = "mbgnbd"
    min_buyers: int = 500
    min_repeat_buyers: int = 50
    churn_low_min_p_alive: float = 0.7
    churn_medium_min_p_alive: float = 0.3

    def __post_init__(self) -> None:
        if self.model not in TRANSACTION_MODELS:
            raise ValueError(f"model must be one of {TRANSACTION_MODELS}, got {self.model!r}")
        if self.min_buyers < 1 or self.min_repeat_buyers < 1:
            raise ValueError("min_buyers and min_repeat_buyers must be >= 1")
        if not 0.0 <= self.churn_medium_min_p_alive <= self.churn_low_min_p_alive <= 1.0:
            raise ValueError("churn thresholds must satisfy 0 <= medium <= low <= 1")


def insufficient_data_reason(n_buyers: int, n_repeat: int, settings: PredictionSettings) -> str | None:
    """Why the store is too small to fit (then every prediction column is NULL), or None."""
    if n_buyers < settings.min_buyers:
        return f"{n_buyers} buyers, fewer than the {settings.min_buyers} needed to fit (min_buyers)"
    if n_repeat < settings.min_repeat_buyers:
        return (
            f"{n_repeat} buyers with a repeat purchase day, fewer than the {settings.min_repeat_buyers} "
            "needed to fit (min_repeat_buyers)"
        )
    return None


@dataclass(frozen=True)
class FitResult:
    """Outcome of one fit. `params` and `log_likelihood` are None whenever `converged` is False."""

    model: str
    params: TransactionParams | SpendParams | None
    log_likelihood: float | None
    customers: int
    converged: bool
    reason: str | None = None
    std_errors: dict[str, float] | None = None
    iterations: int = 0
    excluded: int = 0  # buyers left out because the model cannot use them (spend: m <= 0)

    @property
    def ok(self) -> bool:
        return self.converged and self.params is not None

    def params_json(self) -> dict[str, float] | None:
        """The `params` object of the `clv_model` table."""
        return None if self.params is None else {k: float(v) for k, v in self.params._asdict().items()}


def _failed(model: str, customers: int, reason: str, *, iterations: int = 0, excluded: int = 0) -> FitResult:
    return FitResult(model, None, None, customers, False, reason, iterations=iterations, excluded=excluded)


def _column(name: str, values: ArrayLike, n: int | None = None) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} rows, expected {n}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    if np.any(array < 0):
        raise ValueError(f"{name} has negative values")
    return array


def _weights(weights: ArrayLike | None, n: int) -> NDArray[np.float64]:
    return np.ones(n) if weights is None else _column("weights", weights, n)


def _hessian(fun: Objective, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Central differences of the analytic gradient (O(h^2) accurate), symmetrized."""
    k = theta.size
    hess = np.empty((k, k))
    for j in range(k):
        step = np.zeros(k)
        step[j] = _HESSIAN_STEP
        hess[:, j] = (fun(theta + step)[1] - fun(theta - step)[1]) / (2 * _HESSIAN_STEP)
    return 0.5 * (hess + hess.T)


@dataclass(frozen=True)
class _Optimum:
    theta: NDArray[np.float64]
    value: float
    gradient: NDArray[np.float64]
    hessian: NDArray[np.float64]
    iterations: int
    message: str


def _minimize(fun: Objective, theta0: NDArray[np.float64], bounds: list[tuple[float, float]]) -> _Optimum:
    """L-BFGS-B to a small gradient, then damped Newton steps: quadratic convergence takes the gradient
    from ~1e-8 to rounding level in one or two steps, cheaper than more quasi-Newton iterations. The
    Hessian of the last (tiny) step is reused for the assessment and standard errors."""
    result = minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-8},
    )
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    theta = np.asarray(result.x, dtype=np.float64)
    value, gradient = float(result.fun), np.asarray(result.jac, dtype=np.float64)
    iterations = int(result.nit)
    hessian: NDArray[np.float64] | None = None
    for _ in range(20):
        if not (math.isfinite(value) and np.all(np.isfinite(gradient))) or np.max(np.abs(gradient)) < 1e-12:
            break
        hessian = _hessian(fun, theta)
        try:
            np.linalg.cholesky(hessian)
        except np.linalg.LinAlgError:
            break
        direction = -np.linalg.solve(hessian, gradient)
        scale, accepted = 1.0, False
        while scale > 1e-6:
            candidate = np.clip(theta + scale * direction, lo, hi)
            c_value, c_gradient = fun(candidate)
            # Near the optimum values differ by rounding only, so also accept a smaller gradient.
            if math.isfinite(c_value) and (
                c_value < value - 1e-15 * abs(value)
                or (
                    c_value <= value + 4e-16 * abs(value)
                    and np.max(np.abs(c_gradient)) < np.max(np.abs(gradient))
                )
            ):
                theta, value, gradient, accepted = candidate, c_value, c_gradient, True
                break
            scale /= 2
        iterations += 1
        if not accepted:
            break
        if np.max(np.abs(scale * direction)) > 1e-5:
            hessian = None  # moved too far for the Hessian to stand for the new point
    if hessian is None:
        hessian = _hessian(fun, theta) if math.isfinite(value) else np.full((theta.size, theta.size), np.nan)
    return _Optimum(theta, value, gradient, hessian, iterations, str(result.message))


def _assess(
    model: str,
    names: tuple[str, ...],
    optimum: _Optimum,
    bounds: list[tuple[float, float]],
    total_weight: float,
) -> tuple[str | None, dict[str, float] | None]:
    """Reason the optimum is not a usable estimate (or None), and standard errors when it is."""
    theta, gradient, hessian = optimum.theta, optimum.gradient, optimum.hessian
    estimate = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, np.exp(theta), strict=True))
    if (
        not math.isfinite(optimum.value)
        or not np.all(np.isfinite(gradient))
        or not np.all(np.isfinite(hessian))
    ):
        return f"{model}: non-finite log-likelihood at {estimate}", None
    at_bound = [
        n for n, v, (lo, hi) in zip(names, theta, bounds, strict=True) if min(v - lo, hi - v) < _AT_BOUND
    ]
    if at_bound:
        return (
            f"{model}: {', '.join(at_bound)} ran to the optimizer bound ({estimate}); the likelihood has no "
            "interior maximum on these data (parameters not identified)"
        ), None
    try:
        inverse_root = np.linalg.inv(np.linalg.cholesky(hessian * total_weight))
        # Inverse Hessian of the total negative log-likelihood, on the log scale.
        log_errors = np.sqrt(np.diag(inverse_root.T @ inverse_root))
        loose = [
            f"{n} (log standard error {e:.3g})"
            for n, e in zip(names, log_errors, strict=True)
            if e > _MAX_LOG_STANDARD_ERROR
        ]
        flat = ", ".join(loose)
    except np.linalg.LinAlgError:
        log_errors, flat = np.full(theta.size, np.nan), "Hessian not positive definite"
    worst = float(np.max(np.abs(gradient)))
    if worst > _GRADIENT_TOLERANCE:
        why = optimum.message.rstrip(": ")
        hint = f"; flat likelihood there ({flat}): parameters not identified" if flat else ""
        return f"{model}: no convergence ({why}; |gradient| {worst:.2e} at {estimate}){hint}", None
    if flat:
        return (
            f"{model}: flat likelihood at {estimate} ({flat}): parameters not identified, "
            "a ridge rather than a maximum"
        ), None
    errors = np.exp(theta) * log_errors  # delta method back to the natural scale
    return None, {n: float(e) for n, e in zip(names, errors, strict=True)}


def fit_transaction_model(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    model: str | None = None,
    settings: PredictionSettings | None = None,
) -> FitResult:
    """Fit BG/NBD or MBG/NBD (default: settings.model, else 'mbgnbd') by maximum likelihood.

    `weights[i]` buyers share (x[i], t_x[i], T[i]); times in any unit (alpha comes out in it). With
    `settings`, a store below its data minimums is reported as insufficient without fitting.
    """
    model = model or (settings.model if settings else "mbgnbd")
    s = bgnbd.shift(model)
    x_ = _column("x", x)
    t_x_ = _column("t_x", t_x, x_.size)
    T_ = _column("T", T, x_.size)
    w = _weights(weights, x_.size)
    if np.any(x_ != np.round(x_)):
        raise ValueError("x must hold whole numbers of repeat purchase days")
    if np.any(t_x_ > T_):
        raise ValueError("t_x must not exceed T")
    keep = w > 0
    x_, t_x_, T_, w = x_[keep], np.where(x_[keep] > 0, t_x_[keep], 0.0), T_[keep], w[keep]
    customers = round(float(w.sum()))
    n_repeat = round(float(w[x_ > 0].sum()))
    if settings is not None and (why := insufficient_data_reason(customers, n_repeat, settings)):
        return _failed(model, customers, f"insufficient data: {why}")
    if n_repeat == 0:
        return _failed(
            model, customers, f"{model}: no repeat purchases, so r, alpha, a, b are not identified"
        )
    data = bgnbd.GroupedData.build(x_, t_x_, T_, w)
    scale = max(float(np.max(T_)), 1e-12)
    rate = float(w @ x_) / max(
        float(w @ T_), 1e-12
    )  # repeat days per unit time: E[lambda] = r/alpha at r = 1
    theta0 = np.log([1.0, min(max(1.0 / rate, 1e-3 * scale), 1e3 * scale), 1.0, 1.0])
    log_scale = math.log(scale)
    bounds = [(-_BOX, _BOX), (log_scale - _BOX, log_scale + _BOX), (-_BOX, _BOX), (-_BOX, _BOX)]
    optimum = _minimize(lambda th: bgnbd.negative_log_likelihood(s, th, data), theta0, bounds)
    reason, errors = _assess(model, ("r", "alpha", "a", "b"), optimum, bounds, data.total_weight)
    if reason:
        return _failed(model, customers, reason, iterations=optimum.iterations)
    params = TransactionParams(*(float(v) for v in np.exp(optimum.theta)))
    return FitResult(
        model, params, -optimum.value * data.total_weight, customers, True, None, errors, optimum.iterations
    )


def fit_spend_model(
    x: ArrayLike,
    m: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    settings: PredictionSettings | None = None,
) -> FitResult:
    """Fit Gamma-Gamma on the buyers with x > 0 (others are ignored; m may be NaN there).

    Buyers whose mean repeat value is 0 (free orders) have zero density under any gamma and would make the
    likelihood -inf; they are left out and counted in `excluded`. The fit fails when q <= 1, because the
    population mean p gamma/(q-1) that scores one-time buyers would be infinite.
    """
    model = "gamma_gamma"
    x_ = _column("x", x)
    m_all = np.asarray(m, dtype=np.float64).reshape(-1)
    if m_all.size != x_.size:
        raise ValueError(f"m has {m_all.size} rows, expected {x_.size}")
    w = _weights(weights, x_.size)
    repeat = (x_ > 0) & (w > 0)
    m_ = m_all[repeat]
    if not np.all(np.isfinite(m_)) or np.any(m_ < 0):
        raise ValueError("m must be finite and >= 0 for every buyer with x > 0")
    usable = m_ > 0
    excluded = round(float(w[repeat][~usable].sum()))
    x_, m_, w = x_[repeat][usable], m_[usable], w[repeat][usable]
    customers = round(float(w.sum()))
    if settings is not None and customers < settings.min_repeat_buyers:
        why = insufficient_data_reason(settings.min_buyers, customers, settings)
        return _failed(model, customers, f"insufficient data: {why}", excluded=excluded)
    if customers == 0:
        return _failed(model, customers, "gamma_gamma: no buyer with a repeat purchase day of positive value")
    data = gamma_gamma.SpendData.build(x_, m_, w)
    mean_m = float(w @ m_) / data.total_weight
    log_scale = math.log(mean_m)
    theta0 = np.array([0.0, math.log(2.0), log_scale])  # p = 1, q = 2: population mean = gamma = mean m
    bounds = [(-_BOX, _BOX), (-_BOX, _BOX), (log_scale - _BOX, log_scale + _BOX)]
    optimum = _minimize(lambda th: gamma_gamma.negative_log_likelihood(th, data), theta0, bounds)
    reason, errors = _assess(model, ("p", "q", "gamma"), optimum, bounds, data.total_weight)
    if reason is None and math.exp(optimum.theta[1]) <= 1.0:
        reason = (
            f"gamma_gamma: q = {math.exp(optimum.theta[1]):.4g} <= 1, the population mean value is infinite"
        )
    if reason:
        return _failed(model, customers, reason, iterations=optimum.iterations, excluded=excluded)
    params = SpendParams(*(float(v) for v in np.exp(optimum.theta)))
    return FitResult(
        model,
        params,
        -optimum.value * data.total_weight,
        customers,
        True,
        None,
        errors,
        optimum.iterations,
        excluded,
    )
