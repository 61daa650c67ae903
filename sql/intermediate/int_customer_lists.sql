-- Product, category and coupon lists per customer.
--
-- Speed: names are dictionary-encoded first (the TEMP ENUM type profile_name: a few thousand distinct
-- names), so the heavy grouping and sorting work on small integers; the mart casts the lists back to
-- VARCHAR[] (an array lookup per value).
-- Lists are built from one row per (customer, value) rather than per item: each value keeps only
-- its most recent occurrence (key = seq, then item position; seq = 1 is the last purchase).
--
-- Windows 30..360 are nested and ordered by recency, so a value's most recent occurrence inside the
-- last 360 days is the same for every window that contains it, and each window's list is a prefix of
-- the 360-day list: only that list is built, with the length of each shorter window's prefix (the
-- mart slices it). 360plus is disjoint and gets its own list.
CREATE OR REPLACE TEMP TYPE profile_name AS ENUM (
    SELECT name FROM (
        SELECT product_name AS name FROM stg_order_items WHERE product_name IS NOT NULL
        UNION
        SELECT category_name FROM stg_order_items WHERE category_name IS NOT NULL
        UNION
        SELECT brand_name FROM stg_order_items WHERE brand_name IS NOT NULL
        UNION
        SELECT coupon FROM stg_purchases WHERE coupon IS NOT NULL
    )
    ORDER BY name
);

CREATE OR REPLACE TEMP TABLE int_items AS
SELECT
    p.ckey,
    p.days_ago,
    p.seq,
    i.item_index,
    i.product_name::profile_name AS product_nid,
    i.category_name::profile_name AS category_nid,
    i.brand_name::profile_name AS brand_nid
FROM int_purchases p
JOIN stg_order_items i ON i.okey = p.okey;

CREATE OR REPLACE TEMP TABLE int_list_values AS
SELECT ckey, days_ago >= 360 AS plus, 1 AS kind, product_nid AS nid,      -- 1 product
       min(seq * 1000000 + item_index) AS k, min(days_ago) AS days_ago
FROM int_items WHERE product_nid IS NOT NULL
GROUP BY ckey, plus, product_nid
UNION ALL
SELECT ckey, days_ago >= 360 AS plus, 2 AS kind, category_nid AS nid,     -- 2 category
       min(seq * 1000000 + item_index) AS k, min(days_ago) AS days_ago
FROM int_items WHERE category_nid IS NOT NULL
GROUP BY ckey, plus, category_nid
UNION ALL
SELECT ckey, days_ago >= 360 AS plus, 3 AS kind, coupon::profile_name AS nid,   -- 3 coupon
       min(seq) * 1000000 AS k, min(days_ago) AS days_ago
FROM int_purchases WHERE coupon IS NOT NULL
GROUP BY ckey, plus, nid;

CREATE OR REPLACE TEMP TABLE int_lists AS
SELECT
    ckey,
    list(nid ORDER BY k) FILTER (WHERE kind = 1 AND NOT plus) AS products_360d,
    list(nid ORDER BY k) FILTER (WHERE kind = 1 AND plus) AS products_360plus,
    count(*) FILTER (WHERE kind = 1 AND days_ago < 30) AS n_products_30d,
    count(*) FILTER (WHERE kind = 1 AND days_ago < 60) AS n_products_60d,
    count(*) FILTER (WHERE kind = 1 AND days_ago < 90) AS n_products_90d,
    count(*) FILTER (WHERE kind = 1 AND days_ago < 180) AS n_products_180d,
    list(nid ORDER BY k) FILTER (WHERE kind = 2 AND NOT plus) AS categories_360d,
    list(nid ORDER BY k) FILTER (WHERE kind = 2 AND plus) AS categories_360plus,
    count(*) FILTER (WHERE kind = 2 AND days_ago < 30) AS n_categories_30d,
    count(*) FILTER (WHERE kind = 2 AND days_ago < 60) AS n_categories_60d,
    count(*) FILTER (WHERE kind = 2 AND days_ago < 90) AS n_categories_90d,
    count(*) FILTER (WHERE kind = 2 AND days_ago < 180) AS n_categories_180d,
    list(nid ORDER BY k) FILTER (WHERE kind = 3 AND NOT plus) AS coupons_360d,
    list(nid ORDER BY k) FILTER (WHERE kind = 3 AND plus) AS coupons_360plus,
    count(*) FILTER (WHERE kind = 3 AND days_ago < 30) AS n_coupons_30d,
    count(*) FILTER (WHERE kind = 3 AND days_ago < 60) AS n_coupons_60d,
    count(*) FILTER (WHERE kind = 3 AND days_ago < 90) AS n_coupons_90d,
    count(*) FILTER (WHERE kind = 3 AND days_ago < 180) AS n_coupons_180d
FROM int_list_values
GROUP BY ckey;
