-- One row per day (store time zone) and sales channel: purchases, revenue, buyers, first-time buyers,
-- average ticket and cancellations. Whole history: a few rows per day, cheap, and the page picks the
-- range it draws. Buyers are distinct per row, so they do not add up across rows (dash_summary has
-- the distinct counts of whole periods).
CREATE OR REPLACE TABLE dash_daily_sales AS
WITH sales AS (
    SELECT
        purchase_date AS day,
        sales_channel,
        count(*) AS purchases,
        sum(value_cents) AS revenue_cents,
        count(DISTINCT buyer) AS buyers,
        count(DISTINCT buyer) FILTER (WHERE is_first) AS first_time_buyers
    FROM dash_purchases
    GROUP BY ALL
), cancels AS (
    SELECT purchase_date AS day, sales_channel, count(*) AS cancellations, sum(value_cents) AS cancelled_cents
    FROM dash_cancellations
    GROUP BY ALL
)
SELECT
    day,
    sales_channel,
    coalesce(nullif(trim(sc.name), ''), nullif(sales_channel, ''), '(none)') AS sales_channel_name,
    coalesce(s.purchases, 0) AS purchases,
    coalesce(s.revenue_cents, 0)::BIGINT AS revenue_cents,
    coalesce(s.buyers, 0) AS buyers,
    coalesce(s.first_time_buyers, 0) AS first_time_buyers,
    CASE WHEN s.purchases > 0 THEN round(s.revenue_cents / s.purchases)::BIGINT END AS avg_ticket_cents,
    coalesce(c.cancellations, 0) AS cancellations,
    coalesce(c.cancelled_cents, 0)::BIGINT AS cancelled_cents
FROM sales s
FULL JOIN cancels c USING (day, sales_channel)
LEFT JOIN raw_sales_channels sc ON sc.sales_channel_id = sales_channel
ORDER BY day, sales_channel;
