-- Per-buyer summary of the customer-base-analysis models (docs/predictions.md) as of $as_of (a DATE).
-- Input: a relation purchase_days(customer_id, purchase_date DATE, value DOUBLE). Rows sharing
-- (customer_id, purchase_date) are merged here (values summed), so one row per purchase is fine too.
-- x = repeat purchase days, t_x = last - first purchase date, T = $as_of - first purchase date (days),
-- m = mean value of the repeat purchase days (the first excluded), NULL when x = 0.
WITH days AS (
    SELECT customer_id, purchase_date, sum(value) AS value
    FROM purchase_days
    WHERE purchase_date <= $as_of::DATE
    GROUP BY customer_id, purchase_date
),
firsts AS (
    SELECT customer_id, purchase_date, value, min(purchase_date) OVER (PARTITION BY customer_id) AS first_date
    FROM days
)
SELECT
    customer_id,
    count(*) - 1 AS x,
    date_diff('day', min(purchase_date), max(purchase_date)) AS t_x,
    date_diff('day', min(purchase_date), $as_of::DATE) AS "T",
    avg(value) FILTER (WHERE purchase_date > first_date) AS m
FROM firsts
GROUP BY customer_id
