-- Scratch for the dashboard: every purchase of stg_purchases (same rules as the profile: status set
-- and not excluded, selected sales channels, purchase date in the store time zone, up to D) with its
-- sales channel and buyer. The buyer is the resolved CL document; a purchase no document claims is
-- counted under the order's own identity (user profile id, e-mail, document), so it still counts as a
-- buyer instead of vanishing. is_first marks each buyer's earliest purchase (first-time buyers).
CREATE OR REPLACE TEMP TABLE dash_purchases AS
SELECT
    *,
    row_number() OVER (PARTITION BY buyer ORDER BY creation_date, order_id) = 1 AS is_first
FROM (
    SELECT
        p.okey,
        p.order_id,
        p.creation_date,
        p.purchase_date,
        coalesce(o.sales_channel, '') AS sales_channel,
        p.value_cents,
        p.coupon,
        coalesce(
            c.customer_id,
            'order:' || coalesce(p.user_profile_id, p.client_email, p.client_document, p.order_id)
        ) AS buyer
    FROM stg_purchases p
    JOIN raw_orders o ON o.order_id = p.order_id
    LEFT JOIN stg_order_customer oc ON oc.okey = p.okey
    LEFT JOIN stg_customers c ON c.ckey = oc.ckey
    WHERE p.purchase_date <= $as_of   -- staging holds every date
);

-- Cancelled orders: an excluded status (the profile's "not a purchase" list), same channel and date rules.
CREATE OR REPLACE TEMP TABLE dash_cancellations AS
SELECT
    order_id,
    timezone($timezone, creation_date)::DATE AS purchase_date,
    coalesce(sales_channel, '') AS sales_channel,
    coalesce(value_cents, 0) AS value_cents
FROM raw_orders
WHERE list_contains($excluded_statuses::VARCHAR[], lower(status))
  AND (len($sales_channels::VARCHAR[]) = 0 OR list_contains($sales_channels::VARCHAR[], sales_channel))
  AND timezone($timezone, creation_date)::DATE <= $as_of;
