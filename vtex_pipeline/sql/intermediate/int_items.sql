-- The items of the purchases of int_purchases, with the purchase's customer, seq and days_ago, and
-- the names as profile_name codes (stg_order_items). A view: int_lists and int_last_purchase each
-- read it once, and a 12M-row copy in the file would cost more writing than the join costs.
SELECT
    p.ckey,
    p.days_ago,
    p.seq,
    i.item_index,
    i.product_name AS product_nid,
    i.category_name AS category_nid,
    i.brand_name AS brand_nid
FROM int_purchases p
JOIN stg_order_items i ON i.okey = p.okey
