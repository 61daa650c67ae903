-- One row per buyer: purchase counts, amounts (integer cents) and recency per window, in one pass
-- over the purchases (FILTER per window; never a join of orders to windows). Windows 30..360 are
-- nested (days_ago < w), so their recency is the lifetime recency whenever the window is not empty;
-- 360plus (days_ago >= 360) has its own.
SELECT
    $as_of::DATE AS as_of,
    ckey,
    count(*) FILTER (WHERE days_ago < 30) AS orders_30d,
    count(*) FILTER (WHERE days_ago < 60) AS orders_60d,
    count(*) FILTER (WHERE days_ago < 90) AS orders_90d,
    count(*) FILTER (WHERE days_ago < 180) AS orders_180d,
    count(*) FILTER (WHERE days_ago < 360) AS orders_360d,
    count(*) FILTER (WHERE days_ago >= 360) AS orders_360plus,
    count(*) AS orders_lifetime,
    coalesce(sum(value_cents) FILTER (WHERE days_ago < 30), 0)::BIGINT AS cents_30d,
    coalesce(sum(value_cents) FILTER (WHERE days_ago < 60), 0)::BIGINT AS cents_60d,
    coalesce(sum(value_cents) FILTER (WHERE days_ago < 90), 0)::BIGINT AS cents_90d,
    coalesce(sum(value_cents) FILTER (WHERE days_ago < 180), 0)::BIGINT AS cents_180d,
    coalesce(sum(value_cents) FILTER (WHERE days_ago < 360), 0)::BIGINT AS cents_360d,
    coalesce(sum(value_cents) FILTER (WHERE days_ago >= 360), 0)::BIGINT AS cents_360plus,
    sum(value_cents)::BIGINT AS cents_lifetime,
    min(days_ago) AS recency_lifetime,
    min(days_ago) FILTER (WHERE days_ago >= 360) AS recency_360plus,
    max(days_ago) AS days_since_first_purchase
FROM int_purchases
GROUP BY ckey
