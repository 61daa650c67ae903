-- The headline figures of the last N days (D-N+1 .. D) and of the N days before, for all channels
-- (sales_channel = '*') and per channel. Buyers are distinct over the whole period, which the daily
-- table cannot give by adding rows.
CREATE OR REPLACE TABLE dash_summary AS
WITH periods AS (
    SELECT 'last' AS period, $as_of::DATE - ($period_days::INTEGER - 1) AS start_date, $as_of::DATE AS end_date
    UNION ALL
    SELECT 'previous', $as_of::DATE - (2 * $period_days::INTEGER - 1), $as_of::DATE - $period_days::INTEGER
), sales AS (
    SELECT
        pe.period,
        coalesce(p.sales_channel, '*') AS sales_channel,
        count(*) AS purchases,
        sum(p.value_cents) AS revenue_cents,
        count(DISTINCT p.buyer) AS buyers,
        count(DISTINCT p.buyer) FILTER (WHERE p.is_first) AS first_time_buyers
    FROM periods pe
    JOIN dash_purchases p ON p.purchase_date BETWEEN pe.start_date AND pe.end_date
    GROUP BY GROUPING SETS ((pe.period), (pe.period, p.sales_channel))
), cancels AS (
    SELECT pe.period, coalesce(c.sales_channel, '*') AS sales_channel, count(*) AS cancellations,
           sum(c.value_cents) AS cancelled_cents
    FROM periods pe
    JOIN dash_cancellations c ON c.purchase_date BETWEEN pe.start_date AND pe.end_date
    GROUP BY GROUPING SETS ((pe.period), (pe.period, c.sales_channel))
), keys AS (
    SELECT pe.period, '*' AS sales_channel FROM periods pe
    UNION SELECT period, sales_channel FROM sales
    UNION SELECT period, sales_channel FROM cancels
)
SELECT
    k.period,
    pe.start_date,
    pe.end_date,
    k.sales_channel,
    CASE WHEN k.sales_channel = '*' THEN 'All channels'
         ELSE coalesce(nullif(trim(sc.name), ''), nullif(k.sales_channel, ''), '(none)') END AS sales_channel_name,
    coalesce(s.purchases, 0) AS purchases,
    coalesce(s.revenue_cents, 0)::BIGINT AS revenue_cents,
    coalesce(s.buyers, 0) AS buyers,
    coalesce(s.first_time_buyers, 0) AS first_time_buyers,
    CASE WHEN s.purchases > 0 THEN round(s.revenue_cents / s.purchases)::BIGINT END AS avg_ticket_cents,
    coalesce(c.cancellations, 0) AS cancellations,
    coalesce(c.cancelled_cents, 0)::BIGINT AS cancelled_cents
FROM keys k
JOIN periods pe ON pe.period = k.period
LEFT JOIN sales s ON s.period = k.period AND s.sales_channel = k.sales_channel
LEFT JOIN cancels c ON c.period = k.period AND c.sales_channel = k.sales_channel
LEFT JOIN raw_sales_channels sc ON sc.sales_channel_id = k.sales_channel
ORDER BY k.period, k.sales_channel <> '*', revenue_cents DESC, k.sales_channel;
