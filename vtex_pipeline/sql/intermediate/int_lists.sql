-- Product, category and coupon lists per customer.
--
-- Speed: names arrive dictionary-encoded (the ENUM type profile_name of stg_order_items.sql), so the
-- heavy grouping and sorting work on small integers; the lists are turned back into VARCHAR[] here,
-- with profile_names() (an array lookup per value), so no stored table depends on the dictionary.
-- Each value keeps only its most recent occurrence, k = seq * 10^6 + item position (seq = 1 is the
-- last purchase; one coupon per purchase, so k = seq * 10^6 for coupons).
--
-- Windows 30..360 are nested and ordered by recency, so a value's most recent occurrence inside the
-- last 360 days is the same for every window that contains it, and each window's list is a prefix of
-- the 360-day list: only that list is built, with the length of each shorter window's prefix (the
-- mart slices it). The purchases of a window are exactly seq <= orders_<window> (seq follows
-- creationDate, days_ago follows its date), so a prefix ends at the first k >= (orders + 1) * 10^6.
-- 360plus is disjoint and gets its own list.
--
-- No ordered aggregate and no (customer, value) table: a sort state per group and aggregate, or a
-- 20M-row distinct step, took most of the profile's time at 1M customers. Instead, per customer:
--   1. every occurrence is packed into one BIGINT, name code << 40 | k, and collected unordered;
--   2. list_sort puts each value's occurrences together, most recent first; keeping the first of each
--      run of equal codes keeps the most recent occurrence;
--   3. those are repacked as k << 24 | name code and sorted again: list order = recency order.
-- profile_names() unpacks the names (an array lookup into the ENUM dictionary). Bounds: fewer than
-- 2^23 distinct names, k below 2^39 (about 500,000 purchases per customer).

WITH item_occurrences AS (
    SELECT
        ckey,
        list((enum_code(product_nid)::BIGINT << 40) | (seq * 1000000 + item_index))
            FILTER (WHERE product_nid IS NOT NULL AND days_ago < 360) AS p,
        list((enum_code(product_nid)::BIGINT << 40) | (seq * 1000000 + item_index))
            FILTER (WHERE product_nid IS NOT NULL AND days_ago >= 360) AS pp,
        list((enum_code(category_nid)::BIGINT << 40) | (seq * 1000000 + item_index))
            FILTER (WHERE category_nid IS NOT NULL AND days_ago < 360) AS c,
        list((enum_code(category_nid)::BIGINT << 40) | (seq * 1000000 + item_index))
            FILTER (WHERE category_nid IS NOT NULL AND days_ago >= 360) AS cp
    FROM int_items
    GROUP BY ckey
), coupon_occurrences AS (
    SELECT
        ckey,
        list((enum_code(coupon::profile_name)::BIGINT << 40) | (seq * 1000000)) FILTER (WHERE days_ago < 360) AS q,
        list((enum_code(coupon::profile_name)::BIGINT << 40) | (seq * 1000000)) FILTER (WHERE days_ago >= 360) AS qp
    FROM int_purchases
    WHERE coupon IS NOT NULL
    GROUP BY ckey
), sorted AS (
    SELECT
        w.ckey, w.orders_30d, w.orders_60d, w.orders_90d, w.orders_180d,
        list_sort(i.p) AS p, list_sort(i.pp) AS pp, list_sort(i.c) AS c, list_sort(i.cp) AS cp,
        list_sort(q.q) AS q, list_sort(q.qp) AS qp
    FROM int_windows w
    LEFT JOIN item_occurrences i ON i.ckey = w.ckey
    LEFT JOIN coupon_occurrences q ON q.ckey = w.ckey
), lists AS (
    SELECT
        ckey, orders_30d, orders_60d, orders_90d, orders_180d,
        first_occurrences(p) AS products_360d,
        first_occurrences(pp) AS products_360plus,
        first_occurrences(c) AS categories_360d,
        first_occurrences(cp) AS categories_360plus,
        first_occurrences(q) AS coupons_360d,
        first_occurrences(qp) AS coupons_360plus
    FROM sorted
)
SELECT
    $as_of::DATE AS as_of,
    ckey,
    profile_names(products_360d) AS products_360d,
    profile_names(products_360plus) AS products_360plus,
    prefix_length(products_360d, orders_30d) AS n_products_30d,
    prefix_length(products_360d, orders_60d) AS n_products_60d,
    prefix_length(products_360d, orders_90d) AS n_products_90d,
    prefix_length(products_360d, orders_180d) AS n_products_180d,
    profile_names(categories_360d) AS categories_360d,
    profile_names(categories_360plus) AS categories_360plus,
    prefix_length(categories_360d, orders_30d) AS n_categories_30d,
    prefix_length(categories_360d, orders_60d) AS n_categories_60d,
    prefix_length(categories_360d, orders_90d) AS n_categories_90d,
    prefix_length(categories_360d, orders_180d) AS n_categories_180d,
    profile_names(coupons_360d) AS coupons_360d,
    profile_names(coupons_360plus) AS coupons_360plus,
    prefix_length(coupons_360d, orders_30d) AS n_coupons_30d,
    prefix_length(coupons_360d, orders_60d) AS n_coupons_60d,
    prefix_length(coupons_360d, orders_90d) AS n_coupons_90d,
    prefix_length(coupons_360d, orders_180d) AS n_coupons_180d
FROM lists
