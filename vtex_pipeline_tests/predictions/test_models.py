"""The model formulas: the stable forms against the literature's literal ones, gradients against finite
differences, and the scoring functions against what the generative process actually does."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from scipy.special import beta, gamma, hyp2f1

from vtex_pipeline.predictions import (
    PREDICTION_COLUMNS,
    PredictionSettings,
    SpendParams,
    TransactionParams,
    bgnbd,
    expected_average_value,
    expected_repeat_purchases,
    fit_transaction_model,
    gamma_gamma,
    group_summaries,
    log_likelihood,
    median_time_to_next_purchase,
    p_alive,
    score_customers,
)
from vtex_pipeline.predictions.simulate import simulate_spend, simulate_transactions

MODELS = ["bgnbd", "mbgnbd"]
PARAMS = [TransactionParams(0.5, 40.0, 0.8, 2.5), TransactionParams(2.0, 30.0, 1.7, 4.0)]  # a < 1 and a > 1


def literal_expected(
    model: str, params: TransactionParams, x: float, t_x: float, T: float, t: float
) -> float:
    """FHL (2005) eq. 10 and Batislam et al. (2007) as printed, un-transformed 2F1 (fine for small x)."""
    r, alpha, a, b = params
    s = 0 if model == "bgnbd" else 1
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x + s, a + b + x - 1 + s, z)
    dead = 0.0 if (s == 0 and x == 0) else a / (b + x - 1 + s) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return (a + b + x - 1 + s) / (a - 1) * bracket / (1 + dead)


def literal_likelihood(model: str, params: TransactionParams, x: float, t_x: float, T: float) -> float:
    r, alpha, a, b = params
    s = 0 if model == "bgnbd" else 1
    g = gamma(r + x) * alpha**r / gamma(r)
    first = beta(a, b + x + s) / beta(a, b) * g / (alpha + T) ** (r + x)
    second = (
        0.0 if (s == 0 and x == 0) else beta(a + 1, b + x - 1 + s) / beta(a, b) * g / (alpha + t_x) ** (r + x)
    )
    return first + second


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("params", PARAMS)
def test_stable_forms_equal_the_literal_formulas(model: str, params: TransactionParams) -> None:
    for x in (0, 1, 2, 7, 15):
        for T in (0.0, 12.0, 300.0):
            t_x = 0.0 if x == 0 else T * 0.6
            assert np.exp(log_likelihood(model, params, x, t_x, T)) == pytest.approx(
                literal_likelihood(model, params, x, t_x, T), rel=1e-10
            )
            for t in (30.0, 365.0):
                assert expected_repeat_purchases(model, params, x, t_x, T, t) == pytest.approx(
                    literal_expected(model, params, x, t_x, T, t), rel=1e-9
                )


@pytest.mark.parametrize("model", MODELS)
def test_large_x_and_T_stay_finite_and_bounded(model: str) -> None:
    """The literal 2F1 times a vanishing power is 0 * inf once (1-z)^(r+x) underflows (long horizons, x in
    the hundreds); the Euler form stays finite, below the ceiling P(alive) * E[lambda | alive] * t, smooth
    in x, and equal to the literal value wherever that one is finite."""
    params = TransactionParams(0.5, 40.0, 0.8, 2.5)
    for x, T, t in ((300.0, 1000.0, 3650.0), (2000.0, 20_000.0, 365.0), (50.0, 100.0, 30.0)):
        assert expected_repeat_purchases(model, params, x, T - 1, T, t) == pytest.approx(
            literal_expected(model, params, x, T - 1, T, t), rel=1e-9
        )
    x = np.array([997.0, 998.0, 999.0])
    T = np.full(3, 1000.0)
    t_x = T - 1.0
    with np.errstate(all="ignore"):
        assert np.isnan(literal_expected(model, params, 999.0, 999.0, 1000.0, 3650.0))
    alive = p_alive(model, params, x, t_x, T)
    expected = expected_repeat_purchases(model, params, x, t_x, T, 3650.0)
    ceiling = alive * (params.r + x) / (params.alpha + T) * 3650.0
    assert np.all(np.isfinite(expected)) and np.all(alive > 0.99)
    assert np.all((expected > 0) & (expected <= ceiling))
    assert np.all(np.abs(np.diff(expected)) < 2e-3 * expected[:-1])
    assert np.all(np.isfinite(log_likelihood(model, params, x, t_x, T)))


def test_a_equal_to_one_is_the_limit() -> None:
    near = [TransactionParams(0.5, 40.0, 1.0 + d, 2.5) for d in (-1e-4, 0.0, 1e-4)]
    values = [float(expected_repeat_purchases("mbgnbd", p, 3, 100.0, 200.0, 90.0)) for p in near]
    assert np.isfinite(values[1])
    assert values[1] == pytest.approx(0.5 * (values[0] + values[2]), rel=1e-7)


def test_p_alive_of_one_time_buyers() -> None:
    r, alpha, a, b = params = PARAMS[0]
    T = np.array([0.0, 30.0, 400.0])
    assert np.array_equal(p_alive("bgnbd", params, 0, 0, T), np.ones(3))  # BG/NBD: never dropped out
    mbg = p_alive("mbgnbd", params, 0, 0, T)
    assert mbg == pytest.approx(1 / (1 + a / b * ((alpha + T) / alpha) ** r), rel=1e-12)
    assert mbg[0] == pytest.approx(b / (a + b)) and np.all(np.diff(mbg) < 0)


def test_median_time_to_next_purchase() -> None:
    params = PARAMS[0]
    assert median_time_to_next_purchase(params, 3, 100.0) == pytest.approx(
        140.0 * (2 ** (1 / 3.5) - 1), rel=1e-14
    )


def _finite_difference(fun, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.array([(fun(theta + h * e)[0] - fun(theta - h * e)[0]) / (2 * h) for e in np.eye(theta.size)])


@pytest.mark.parametrize("model", MODELS)
def test_transaction_gradient(model: str) -> None:
    rng = np.random.default_rng(3)
    sim = simulate_transactions(model, PARAMS[0], rng.integers(0, 500, 3000).astype(float), rng)
    x, t_x, T, w, _ = group_summaries(sim.x, np.floor(sim.t_x), sim.T)
    data = bgnbd.GroupedData.build(x, t_x, T, w)
    s = bgnbd.shift(model)
    for theta in (np.log([0.5, 40.0, 0.8, 2.5]), np.log([2.0, 5.0, 3.0, 0.7])):
        value, grad = bgnbd.negative_log_likelihood(s, theta, data)
        expected_value = (
            -float(w @ log_likelihood(model, TransactionParams(*np.exp(theta)), x, t_x, T)) / w.sum()
        )
        assert value == pytest.approx(expected_value, rel=1e-12)
        assert grad == pytest.approx(
            _finite_difference(lambda th: bgnbd.negative_log_likelihood(s, th, data), theta), abs=1e-7
        )


def test_spend_gradient_and_likelihood() -> None:
    rng = np.random.default_rng(4)
    x = 1 + rng.poisson(2.0, 2000)
    m = simulate_spend(SpendParams(4.0, 3.0, 20.0), x, rng)
    w = rng.integers(1, 4, x.size).astype(float)
    data = gamma_gamma.SpendData.build(x.astype(float), m, w)
    theta = np.log([3.0, 2.5, 30.0])
    value, grad = gamma_gamma.negative_log_likelihood(theta, data)
    params = SpendParams(*np.exp(theta))
    assert value == pytest.approx(-float(w @ gamma_gamma.log_likelihood(params, x, m)) / w.sum(), rel=1e-12)
    fun = lambda th: gamma_gamma.negative_log_likelihood(th, data)  # noqa: E731
    assert grad == pytest.approx(_finite_difference(fun, theta), abs=1e-7)


@pytest.mark.parametrize("model", MODELS)
def test_grouped_fit_equals_row_fit(model: str) -> None:
    rng = np.random.default_rng(5)
    sim = simulate_transactions(model, PARAMS[0], rng.integers(30, 400, 4000).astype(float), rng)
    t_x = np.floor(sim.t_x)
    x, gt_x, T, w, inverse = group_summaries(sim.x, t_x, sim.T)
    assert np.array_equal(x[inverse], sim.x) and np.array_equal(gt_x[inverse], t_x) and w.sum() == 4000
    rows = fit_transaction_model(sim.x, t_x, sim.T, model=model)
    grouped = fit_transaction_model(x, gt_x, T, w, model=model)
    assert rows.ok and grouped.ok and grouped.customers == rows.customers == 4000
    assert np.allclose(grouped.params, rows.params, rtol=1e-7)
    assert grouped.log_likelihood == pytest.approx(rows.log_likelihood, rel=1e-12)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("params", PARAMS)
def test_scores_match_the_generative_process(model: str, params: TransactionParams) -> None:
    """Law of total expectation on 200,000 simulated customers with the true parameters: the mean of
    P(alive | x, t_x, T) is the fraction actually alive at T, the mean of E[Y(90) | x, t_x, T] the mean
    number of repeat purchases actually made in the next 90 days, and half of the alive customers buy
    again within the median time. Each is asserted within 4 Monte Carlo standard errors."""
    rng = np.random.default_rng(6)
    n = 200_000
    sim = simulate_transactions(model, params, rng.integers(0, 731, n).astype(float), rng, horizon=90.0)
    assert sim.future is not None

    def within(residual: np.ndarray) -> bool:
        return abs(residual.mean()) < 4 * residual.std() / np.sqrt(residual.size)

    assert within(sim.alive - p_alive(model, params, sim.x, sim.t_x, sim.T))
    assert within(sim.future - expected_repeat_purchases(model, params, sim.x, sim.t_x, sim.T, 90.0))
    alive = sim.alive
    median = median_time_to_next_purchase(params, sim.x[alive], sim.T[alive])
    assert within((sim.next_wait[alive] <= median) - 0.5)


def test_expected_average_value() -> None:
    params = SpendParams(6.25, 3.74, 15.44)
    population = 6.25 * 15.44 / 2.74
    values = expected_average_value(params, [0, 1, 5, 10_000], [np.nan, 50.0, 50.0, 50.0])
    assert values[0] == pytest.approx(population, rel=1e-14)
    weight = 6.25 / (6.25 + 2.74)  # on m, for x = 1
    assert values[1] == pytest.approx(weight * 50.0 + (1 - weight) * population, rel=1e-14)
    assert population < values[1] < values[2] < values[3] < 50.0 and values[3] == pytest.approx(
        50.0, rel=1e-3
    )
    with pytest.raises(ValueError, match="q must be > 1"):
        expected_average_value(SpendParams(1.0, 0.9, 10.0), [1], [10.0])


def test_score_customers_columns() -> None:
    transaction = TransactionParams(0.5, 40.0, 0.8, 2.5)
    spend = SpendParams(6.25, 3.74, 15.44)
    x = np.array([0, 1, 4, 20])
    t_x = np.array([0, 10, 300, 360])
    T = np.array([5, 400, 365, 365])
    m = np.array([np.nan, 30.0, 45.5, 12.0])
    settings = PredictionSettings(model="mbgnbd", churn_low_min_p_alive=0.75, churn_medium_min_p_alive=0.2)
    out = score_customers(
        x, t_x, T, m, transaction=transaction, spend=spend, settings=settings, as_of=date(2025, 6, 15)
    )
    assert set(PREDICTION_COLUMNS) <= set(out)
    alive = p_alive("mbgnbd", transaction, x, t_x, T)
    assert np.array_equal(out["p_alive"], alive)
    for column, days in (
        ("expected_orders_30d", 30),
        ("expected_orders_90d", 90),
        ("expected_orders_365d", 365),
    ):
        assert np.array_equal(out[column], expected_repeat_purchases("mbgnbd", transaction, x, t_x, T, days))
    value = np.round(expected_average_value(spend, x, m), 2)
    assert np.array_equal(out["expected_avg_order_value"], value)
    assert out["expected_avg_order_value"][0] == round(6.25 * 15.44 / 2.74, 2)
    assert np.array_equal(out["predicted_clv_365d"], np.round(out["expected_orders_365d"] * value, 2))
    offset = np.rint((40.0 + T) * (2 ** (1 / (0.5 + x)) - 1)).astype(np.int64)
    assert np.array_equal(out["expected_next_order_days"], offset)
    assert out["expected_next_order_date"][1] == np.datetime64("2025-06-15") + int(offset[1])
    assert np.isnan(out["avg_days_between_orders"][0])
    assert np.array_equal(out["avg_days_between_orders"][1:], [10.0, 75.0, 18.0])
    expected_risk = np.where(alive >= 0.75, "low", np.where(alive >= 0.2, "medium", "high"))
    assert np.array_equal(out["churn_risk"], expected_risk) and set(expected_risk) == {
        "low",
        "medium",
        "high",
    }
    # Fractional times (no (x, T) de-duplication) and repeated pairs (de-duplicated) score alike.
    half = score_customers(x, t_x + 0.5, T + 0.5, m, transaction=transaction, spend=spend)
    assert np.array_equal(
        half["expected_orders_90d"],
        expected_repeat_purchases("mbgnbd", transaction, x, t_x + 0.5, T + 0.5, 90),
    )
    twice = score_customers(
        np.r_[x, x], np.r_[t_x, t_x], np.r_[T, T], np.r_[m, m], transaction=transaction, spend=spend
    )
    assert np.array_equal(
        twice["expected_orders_365d"], np.r_[out["expected_orders_365d"], out["expected_orders_365d"]]
    )
    bg = score_customers(x, t_x, T, m, transaction=transaction, spend=spend, model="bgnbd")
    assert bg["p_alive"][0] == 1.0 and bg["churn_risk"][0] == "low"
    with pytest.raises(ValueError, match="finite and > 0"):
        score_customers(x, t_x, T, m, transaction=transaction._replace(b=float("nan")), spend=spend)
