-- customer_profile as of D, one row per customer created on or before D: exactly the columns of
-- docs/attributes.md (customer_id and as_of first). One SELECT over the intermediate models of D (each
-- checked to hold D before this runs); the lists arrive as names, the 30..180-day lists are slices of
-- the 360-day list (int_lists.sql). Group and segment come from int_rfm (the editable seed); customers
-- without a purchase get the seed's prospects row (both scores empty). The prediction columns come from
-- int_predictions, written by vtex_pipeline/profile/predictions.py (fit and scoring are Python) before
-- this SELECT runs; compute.py writes it to customer_profile (the newest date) and to the history.
SELECT
    c.customer_id,
    $as_of::DATE AS as_of,
    c.email,
    c.first_name,
    c.last_name,
    c.document,
    c.phone,
    c.gender,
    c.birth_date,
    c.is_newsletter_opt_in,
    ($as_of::DATE - w.days_since_first_purchase)::DATE AS first_purchase_date,
    w.days_since_first_purchase::INTEGER AS days_since_first_purchase,
    ($as_of::DATE - w.recency_lifetime)::DATE AS last_purchase_date,
    w.recency_lifetime::INTEGER AS days_since_last_purchase,
    coalesce(lp.last_purchase_brands, []::VARCHAR[]) AS last_purchase_brands,
    coalesce(lp.last_purchase_categories, []::VARCHAR[]) AS last_purchase_categories,
    coalesce(lp.last_purchase_promo_codes, []::VARCHAR[]) AS last_purchase_promo_codes,
    coalesce(w.orders_30d, 0)::INTEGER AS orders_30d,
    coalesce(w.orders_60d, 0)::INTEGER AS orders_60d,
    coalesce(w.orders_90d, 0)::INTEGER AS orders_90d,
    coalesce(w.orders_180d, 0)::INTEGER AS orders_180d,
    coalesce(w.orders_360d, 0)::INTEGER AS orders_360d,
    coalesce(w.orders_360plus, 0)::INTEGER AS orders_360plus,
    cents_to_amount(coalesce(w.cents_30d, 0)) AS amount_30d,
    cents_to_amount(coalesce(w.cents_60d, 0)) AS amount_60d,
    cents_to_amount(coalesce(w.cents_90d, 0)) AS amount_90d,
    cents_to_amount(coalesce(w.cents_180d, 0)) AS amount_180d,
    cents_to_amount(coalesce(w.cents_360d, 0)) AS amount_360d,
    cents_to_amount(coalesce(w.cents_360plus, 0)) AS amount_360plus,
    CASE WHEN w.orders_30d > 0 THEN cents_to_amount(div_half_even(w.cents_30d, w.orders_30d)) END AS avg_amount_30d,
    CASE WHEN w.orders_60d > 0 THEN cents_to_amount(div_half_even(w.cents_60d, w.orders_60d)) END AS avg_amount_60d,
    CASE WHEN w.orders_90d > 0 THEN cents_to_amount(div_half_even(w.cents_90d, w.orders_90d)) END AS avg_amount_90d,
    CASE WHEN w.orders_180d > 0 THEN cents_to_amount(div_half_even(w.cents_180d, w.orders_180d)) END AS avg_amount_180d,
    CASE WHEN w.orders_360d > 0 THEN cents_to_amount(div_half_even(w.cents_360d, w.orders_360d)) END AS avg_amount_360d,
    CASE WHEN w.orders_360plus > 0 THEN cents_to_amount(div_half_even(w.cents_360plus, w.orders_360plus)) END AS avg_amount_360plus,
    coalesce(l.products_360d[1:l.n_products_30d], []::VARCHAR[]) AS products_30d,
    coalesce(l.products_360d[1:l.n_products_60d], []::VARCHAR[]) AS products_60d,
    coalesce(l.products_360d[1:l.n_products_90d], []::VARCHAR[]) AS products_90d,
    coalesce(l.products_360d[1:l.n_products_180d], []::VARCHAR[]) AS products_180d,
    coalesce(l.products_360d, []::VARCHAR[]) AS products_360d,
    coalesce(l.products_360plus, []::VARCHAR[]) AS products_360plus,
    coalesce(l.categories_360d[1:l.n_categories_30d], []::VARCHAR[]) AS categories_30d,
    coalesce(l.categories_360d[1:l.n_categories_60d], []::VARCHAR[]) AS categories_60d,
    coalesce(l.categories_360d[1:l.n_categories_90d], []::VARCHAR[]) AS categories_90d,
    coalesce(l.categories_360d[1:l.n_categories_180d], []::VARCHAR[]) AS categories_180d,
    coalesce(l.categories_360d, []::VARCHAR[]) AS categories_360d,
    coalesce(l.categories_360plus, []::VARCHAR[]) AS categories_360plus,
    coalesce(l.coupons_360d[1:l.n_coupons_30d], []::VARCHAR[]) AS coupons_30d,
    coalesce(l.coupons_360d[1:l.n_coupons_60d], []::VARCHAR[]) AS coupons_60d,
    coalesce(l.coupons_360d[1:l.n_coupons_90d], []::VARCHAR[]) AS coupons_90d,
    coalesce(l.coupons_360d[1:l.n_coupons_180d], []::VARCHAR[]) AS coupons_180d,
    coalesce(l.coupons_360d, []::VARCHAR[]) AS coupons_360d,
    coalesce(l.coupons_360plus, []::VARCHAR[]) AS coupons_360plus,
    r.rfm_30d,
    r.rfm_60d,
    r.rfm_90d,
    r.rfm_180d,
    r.rfm_360d,
    r.rfm_360plus,
    coalesce(r.rfm_group, s.rfm_group) AS rfm_group,
    coalesce(r.rfm_segment, s.rfm_segment) AS rfm_segment,
    -- predictions (docs/attributes.md): NULL without a purchase, and for everyone when no fit was usable
    pr.p_alive,
    pr.expected_orders_30d,
    pr.expected_orders_90d,
    pr.expected_orders_365d,
    pr.expected_avg_order_value,
    pr.predicted_clv_365d,
    pr.expected_next_order_date,
    pr.avg_days_between_orders,
    pr.churn_risk
FROM stg_customers c
LEFT JOIN int_windows w ON w.ckey = c.ckey
LEFT JOIN int_lists l ON l.ckey = c.ckey
LEFT JOIN int_last_purchase lp ON lp.ckey = c.ckey
LEFT JOIN int_rfm r ON r.ckey = c.ckey
CROSS JOIN (SELECT rfm_group, rfm_segment FROM seed_rfm_segments WHERE f_score IS NULL) s  -- one row
LEFT JOIN int_predictions pr ON pr.ckey = c.ckey
WHERE c.created_date <= $as_of;
