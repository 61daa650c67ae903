-- Top products, categories, brands and coupons by revenue over the last N days (N = $period_days).
-- A kind with nothing in N days (coupons, in a small or quiet store) falls back to 3N, then 12N days,
-- so the panel shows the latest that exists instead of an empty box; window_days says which.
-- Item revenue is the selling price (after item discounts; the price when absent) times the quantity;
-- a coupon's revenue is the value of the purchases that used it. Names come from stg_order_items, so
-- they follow the profile's catalog fallbacks. "purchases" counts distinct orders.
CREATE OR REPLACE TABLE dash_top_items AS
WITH windows AS (
    SELECT unnest([1, 3, 12]) * $period_days::INTEGER AS window_days
), recent AS (
    SELECT w.window_days, p.okey, p.order_id, p.value_cents, p.coupon
    FROM windows w
    JOIN dash_purchases p ON p.purchase_date > $as_of::DATE - w.window_days
), items AS (
    SELECT
        r.window_days,
        r.okey,
        i.product_name,
        i.category_name,
        i.brand_name,
        coalesce(ri.quantity, 0) AS quantity,
        coalesce(ri.selling_price_cents, ri.price_cents, 0) * coalesce(ri.quantity, 0) AS revenue_cents
    FROM recent r
    JOIN stg_order_items i ON i.okey = r.okey
    JOIN raw_order_items ri ON ri.order_id = r.order_id AND ri.item_index = i.item_index
), long AS (
    SELECT window_days, 'product' AS kind, product_name AS name, okey, quantity, revenue_cents FROM items
    UNION ALL
    SELECT window_days, 'category', category_name, okey, quantity, revenue_cents FROM items
    UNION ALL
    SELECT window_days, 'brand', brand_name, okey, quantity, revenue_cents FROM items
    UNION ALL
    SELECT window_days, 'coupon', coupon, okey, 1, value_cents FROM recent WHERE coupon IS NOT NULL
), totals AS (
    SELECT
        window_days,
        kind,
        coalesce(name, '(unknown)') AS name,
        count(DISTINCT okey) AS purchases,
        sum(quantity)::BIGINT AS quantity,
        sum(revenue_cents)::BIGINT AS revenue_cents
    FROM long
    GROUP BY ALL
), chosen AS (
    SELECT kind, min(window_days) AS window_days FROM totals GROUP BY kind
)
SELECT kind, window_days, rank, name, purchases, quantity, revenue_cents
FROM (
    SELECT *, row_number() OVER (PARTITION BY window_days, kind ORDER BY revenue_cents DESC, purchases DESC, name) AS rank
    FROM totals
    SEMI JOIN chosen USING (kind, window_days)
)
WHERE rank <= $top_n
ORDER BY kind, rank;
