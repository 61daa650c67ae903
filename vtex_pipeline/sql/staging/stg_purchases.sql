-- Purchases: orders whose status is set and not excluded, in a selected sales channel, with the
-- purchase date = creationDate in the store time zone, truncated to a date. Every date: the models of
-- an as-of day D keep purchase_date <= D (int_purchases), so this table is built once per sync.
-- "Only the latest version counts" is guaranteed by the raw layer: raw_orders has order_id as its
-- primary key and a re-fetched order replaces its row (an order cancelled later stops being a purchase
-- here as soon as the look-back re-fetches it), so no de-duplication is needed (or paid for) here.
SELECT
    okey,
    order_id,
    creation_date,
    purchase_date,
    value_cents,
    coupon,
    user_profile_id,
    client_email,
    client_document
FROM (
    SELECT
        rowid AS okey,   -- integer key for joins (row_number() OVER () would materialize every row)
        order_id,
        creation_date,
        timezone($timezone, creation_date)::DATE AS purchase_date,
        coalesce(value_cents, 0) AS value_cents,
        -- marketingData.coupon trimmed and upper-cased; empty means no coupon
        nullif(upper(trim(coupon, E' \t\r\n')), '') AS coupon,
        nullif(trim(user_profile_id), '') AS user_profile_id,
        -- an alias e-mail (…ct.vtex.com.br) never identifies anyone; the loader's flag settles most
        -- rows (most VTEX order e-mails are aliases) before any string work
        CASE WHEN client_email_is_alias THEN NULL
             WHEN NOT suffix(lower(trim(client_email)), 'ct.vtex.com.br')
             THEN nullif(lower(trim(client_email)), '') END AS client_email,
        nullif(trim(client_document), '') AS client_document,
        status,
        sales_channel
    FROM raw_orders
)
WHERE status IS NOT NULL
  AND NOT list_contains($excluded_statuses::VARCHAR[], lower(status))
  AND (len($sales_channels::VARCHAR[]) = 0 OR list_contains($sales_channels::VARCHAR[], sales_channel))
