-- The last purchase of each buyer (seq = 1: latest creationDate, ties by greatest orderId): the
-- distinct brands and categories of its items in item order, and its coupon.
CREATE OR REPLACE TEMP TABLE int_last_purchase AS
WITH brands AS (
    SELECT ckey, list(brand_nid ORDER BY k) AS brands
    FROM (SELECT ckey, brand_nid, min(item_index) AS k FROM int_items
          WHERE seq = 1 AND brand_nid IS NOT NULL GROUP BY ALL)
    GROUP BY ckey
), categories AS (
    SELECT ckey, list(category_nid ORDER BY k) AS categories
    FROM (SELECT ckey, category_nid, min(item_index) AS k FROM int_items
          WHERE seq = 1 AND category_nid IS NOT NULL GROUP BY ALL)
    GROUP BY ckey
)
SELECT
    p.ckey,
    coalesce(b.brands::VARCHAR[], []::VARCHAR[]) AS last_purchase_brands,
    coalesce(c.categories::VARCHAR[], []::VARCHAR[]) AS last_purchase_categories,
    CASE WHEN p.coupon IS NULL THEN []::VARCHAR[] ELSE [p.coupon] END AS last_purchase_promo_codes
FROM int_purchases p
LEFT JOIN brands b ON b.ckey = p.ckey
LEFT JOIN categories c ON c.ckey = p.ckey
WHERE p.seq = 1;
