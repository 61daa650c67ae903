"""Parameter recovery on data drawn from the models, and honest failure on data that cannot be fitted.

Tolerance: each estimate within 3 of its own standard errors (inverse Hessian of the log-likelihood) of the
true value, and those errors below 12% of the value so the check has teeth. A replication study (40 seeds
x 20,000 customers per model) gave z = (estimate - true) / SE with standard deviation 0.76-1.07 for every
parameter and |z| <= 2.9, so the standard errors are calibrated; the seeds are fixed, so the test is
deterministic. Times are continuous (the generative process as published, no day rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from vtex_pipeline.predictions import (
    FitResult,
    PredictionSettings,
    SpendParams,
    TransactionParams,
    fit_spend_model,
    fit_transaction_model,
    insufficient_data_reason,
)
from vtex_pipeline.predictions.simulate import simulate_spend, simulate_transactions

N = 20_000


def assert_recovered(fit: FitResult, true: TransactionParams | SpendParams) -> None:
    assert fit.ok and fit.reason is None, fit.reason
    assert fit.params is not None and fit.std_errors is not None
    for name, value in true._asdict().items():
        estimate, error = getattr(fit.params, name), fit.std_errors[name]
        assert 0 < error < 0.12 * value, (name, error)
        assert abs(estimate - value) < 3 * error, (name, estimate, value, error)


@pytest.mark.parametrize(
    ("model", "true", "seed"),
    [
        ("bgnbd", TransactionParams(r=0.5, alpha=40.0, a=0.8, b=2.5), 11),
        ("mbgnbd", TransactionParams(r=0.6, alpha=50.0, a=0.9, b=1.6), 12),
        ("mbgnbd", TransactionParams(r=2.0, alpha=30.0, a=1.7, b=4.0), 13),
    ],
)
def test_transaction_parameters_are_recovered(model: str, true: TransactionParams, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sim = simulate_transactions(model, true, rng.integers(30, 731, N).astype(float), rng)
    fit = fit_transaction_model(sim.x, sim.t_x, sim.T, model=model, settings=PredictionSettings())
    assert fit.model == model and fit.customers == N
    assert_recovered(fit, true)


def test_spend_parameters_are_recovered() -> None:
    rng = np.random.default_rng(14)
    true = SpendParams(p=4.0, q=3.0, gamma=20.0)
    x = 1 + rng.poisson(2.0, N)
    fit = fit_spend_model(x, simulate_spend(true, x, rng), settings=PredictionSettings())
    assert fit.customers == N
    assert_recovered(fit, true)


def assert_failed(fit: FitResult, *fragments: str) -> None:
    assert not fit.ok and not fit.converged
    assert fit.params is None and fit.log_likelihood is None and fit.std_errors is None
    assert fit.reason is not None and all(f in fit.reason for f in fragments), fit.reason


def test_too_small_stores_are_insufficient_not_fitted() -> None:
    settings = PredictionSettings()
    fit = fit_transaction_model([2, 0, 5], [30, 0, 80], [100, 50, 90], settings=settings)
    assert_failed(fit, "insufficient data", "3 buyers", "500")
    assert fit.customers == 3
    many_one_timers = fit_transaction_model(np.r_[np.zeros(990), np.ones(10)], np.r_[np.zeros(990), np.full(10, 5.0)],
                                            np.full(1000, 60.0), settings=settings)  # fmt: skip
    assert_failed(many_one_timers, "insufficient data", "10 buyers with a repeat", "min_repeat_buyers")
    spend = fit_spend_model([1, 2, 0], [10.0, 20.0, np.nan], settings=settings)
    assert_failed(spend, "insufficient data", "min_repeat_buyers")


def test_insufficient_data_reason() -> None:
    settings = PredictionSettings(min_buyers=100, min_repeat_buyers=20)
    assert insufficient_data_reason(100, 20, settings) is None
    assert "99 buyers" in (insufficient_data_reason(99, 50, settings) or "")
    assert "19 buyers with a repeat" in (insufficient_data_reason(1000, 19, settings) or "")
    with pytest.raises(ValueError):
        PredictionSettings(model="pareto")
    with pytest.raises(ValueError):
        PredictionSettings(churn_low_min_p_alive=0.2, churn_medium_min_p_alive=0.3)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_no_repeat_purchases_is_a_failed_fit(model: str) -> None:
    fit = fit_transaction_model(np.zeros(5000), np.zeros(5000), np.linspace(1, 700, 5000), model=model)
    assert_failed(fit, "no repeat purchases", "not identified")
    assert fit.customers == 5000


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_a_likelihood_without_interior_maximum_is_a_failed_fit(model: str) -> None:
    """Identical customers buying at one Poisson rate, never dropping out: no heterogeneity and no dropout,
    so the MLE runs off towards r, alpha -> infinity. Reported as failed (the optimizer stops somewhere on
    that ridge: at a bound, short of convergence, or with undetermined parameters), never as huge numbers."""
    rng = np.random.default_rng(15)
    T = np.full(5000, 365.0)
    x = rng.poisson(0.05 * T).astype(float)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1.0), 1.0), 0.0)
    fit = fit_transaction_model(x, t_x, T, model=model, settings=PredictionSettings())
    assert_failed(fit)
    assert "not identified" in fit.reason or "no convergence" in fit.reason, fit.reason


def test_spend_without_a_finite_mean_is_a_failed_fit() -> None:
    """Log-normal spend with a huge spread fits q <= 1: the population mean used for one-time buyers would
    be infinite, so there is no usable spend model."""
    rng = np.random.default_rng(16)
    x = rng.integers(1, 5, 5000)
    fit = fit_spend_model(x, np.exp(rng.normal(3.0, 3.0, 5000)))
    assert_failed(fit, "q = ", "<= 1")


def test_spend_ignores_zero_value_buyers_and_says_so() -> None:
    rng = np.random.default_rng(17)
    x = 1 + rng.poisson(2.0, 3000)
    m = simulate_spend(SpendParams(4.0, 3.0, 20.0), x, rng)
    m[:7] = 0.0
    fit = fit_spend_model(x, m)
    assert fit.ok and fit.excluded == 7 and fit.customers == 2993


def test_invalid_inputs_are_errors() -> None:
    with pytest.raises(ValueError, match="t_x must not exceed T"):
        fit_transaction_model([1], [10], [5])
    with pytest.raises(ValueError, match="non-finite"):
        fit_transaction_model([1], [np.nan], [5])
    with pytest.raises(ValueError, match="whole numbers"):
        fit_transaction_model([1.5], [1], [5])
    with pytest.raises(ValueError, match="unknown transaction model"):
        fit_transaction_model([1], [1], [5], model="pareto")
