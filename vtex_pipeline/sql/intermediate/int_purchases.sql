-- The purchases of the customers in the profile, with days_ago = D - purchase_date and seq, the
-- customer's purchases numbered from the most recent (creationDate desc, then orderId desc): seq = 1
-- is the last purchase, and seq orders every list "most recent purchase first". Purchases up to D of
-- customers created by D (store time zone).
SELECT
    $as_of::DATE AS as_of,
    oc.ckey,
    p.okey,
    ($as_of - p.purchase_date)::INTEGER AS days_ago,
    p.purchase_date,
    p.value_cents,
    p.coupon,
    row_number() OVER (PARTITION BY oc.ckey ORDER BY p.creation_date DESC, p.order_id DESC) AS seq
FROM stg_purchases p
JOIN stg_order_customer oc ON oc.okey = p.okey
JOIN stg_customers c ON c.ckey = oc.ckey
WHERE p.purchase_date <= $as_of AND c.created_date <= $as_of;
