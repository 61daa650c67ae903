-- The last purchase of each buyer (seq = 1: latest creationDate, ties by greatest orderId): the
-- distinct brands and categories of its items in item order, and its coupon. Lists are packed
-- (item position, name code) integers sorted by list_sort, as in int_lists.sql.
WITH brands AS (
    SELECT ckey, list_sort(list(k * 16777216 + enum_code(brand_nid))) AS brands
    FROM (SELECT ckey, brand_nid, min(item_index) AS k FROM int_items
          WHERE seq = 1 AND brand_nid IS NOT NULL GROUP BY ALL)
    GROUP BY ckey
), categories AS (
    SELECT ckey, list_sort(list(k * 16777216 + enum_code(category_nid))) AS categories
    FROM (SELECT ckey, category_nid, min(item_index) AS k FROM int_items
          WHERE seq = 1 AND category_nid IS NOT NULL GROUP BY ALL)
    GROUP BY ckey
)
SELECT
    $as_of::DATE AS as_of,
    p.ckey,
    coalesce(profile_names(b.brands), []::VARCHAR[]) AS last_purchase_brands,
    coalesce(profile_names(c.categories), []::VARCHAR[]) AS last_purchase_categories,
    CASE WHEN p.coupon IS NULL THEN []::VARCHAR[] ELSE [p.coupon] END AS last_purchase_promo_codes
FROM int_purchases p
LEFT JOIN brands b ON b.ckey = p.ckey
LEFT JOIN categories c ON c.ckey = p.ckey
WHERE p.seq = 1
