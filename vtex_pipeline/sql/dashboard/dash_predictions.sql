-- Predictions of the latest profile by RFM group and segment (docs/attributes.md):
-- expected revenue of the next 365 days (sum of predicted_clv_365d), expected purchase days, and how
-- many customers are at low / medium / high churn risk. Customers without predictions (no purchase, or
-- no usable fit: see dash_prediction_info) count in `customers` only.
-- dash_prediction_source is a TEMP view over customer_profile made by compute_kpis (NULL predictions
-- when the profile predates them).
CREATE OR REPLACE TABLE dash_predictions AS
SELECT
    (SELECT max(as_of) FROM customer_profile_runs) AS as_of,
    coalesce(rfm_group, '(none)') AS rfm_group,
    coalesce(rfm_segment, '(none)') AS rfm_segment,
    count(*) AS customers,
    count(p_alive) AS predicted_customers,
    round(avg(p_alive), 4) AS avg_p_alive,
    round(sum(expected_orders_365d), 1) AS expected_orders_365d,
    sum(predicted_clv_365d)::DECIMAL(18, 2) AS expected_revenue_365d,
    count(*) FILTER (WHERE churn_risk = 'low') AS churn_low,
    count(*) FILTER (WHERE churn_risk = 'medium') AS churn_medium,
    count(*) FILTER (WHERE churn_risk = 'high') AS churn_high
FROM dash_prediction_source
GROUP BY ALL
ORDER BY expected_revenue_365d DESC NULLS LAST, customers DESC, rfm_group, rfm_segment;

-- The back-test of the latest profile's date: predicted vs actual repeat purchase days per week of
-- the holdout (D - 90, D] (clv_backtest, written with the profile).
CREATE OR REPLACE TABLE dash_backtest AS
SELECT as_of, week, period_start, period_end, round(predicted, 1) AS predicted, actual
FROM clv_backtest
WHERE as_of = (SELECT max(as_of) FROM customer_profile_runs)
ORDER BY week;

-- One row: the model and fit status of the latest profile's predictions and the back-test totals.
CREATE OR REPLACE TABLE dash_prediction_info AS
SELECT
    (SELECT max(as_of) FROM customer_profile_runs) AS as_of,
    r.model,
    r.status,
    r.reason,
    r.buyers,
    r.backtest_status,
    r.backtest_reason,
    r.backtest_start,
    round(r.backtest_predicted, 1) AS backtest_predicted,
    r.backtest_actual,
    round(abs(r.backtest_predicted - r.backtest_actual) / nullif(r.backtest_actual, 0), 4) AS backtest_share
FROM (SELECT 1) AS one
LEFT JOIN clv_runs r ON r.as_of = (SELECT max(as_of) FROM customer_profile_runs);
