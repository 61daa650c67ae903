-- Order -> customer, first match wins: userProfileId = CL.userId, then a non-alias order e-mail =
-- CL.email, then document = CL.document (both non-empty). Every CL document is a candidate (not only
-- those created by D) so that resolution is a property of the order, not of the date. When several CL
-- documents share a key, the earliest created (then the smallest id) wins, deterministically.
-- Unresolved purchases are kept with a NULL ckey: they feed the resolution-share check.
WITH by_user AS (
    SELECT user_id AS k, arg_min(ckey, (created_in, customer_id)) AS ckey
    FROM stg_customers WHERE user_id IS NOT NULL GROUP BY 1
), by_email AS (
    SELECT email AS k, arg_min(ckey, (created_in, customer_id)) AS ckey
    FROM stg_customers WHERE email IS NOT NULL GROUP BY 1
), by_document AS (
    SELECT document AS k, arg_min(ckey, (created_in, customer_id)) AS ckey
    FROM stg_customers WHERE document IS NOT NULL GROUP BY 1
)
SELECT
    p.okey,
    coalesce(u.ckey, e.ckey, d.ckey) AS ckey,
    CASE WHEN u.ckey IS NOT NULL THEN 'user_profile_id'
         WHEN e.ckey IS NOT NULL THEN 'email'
         WHEN d.ckey IS NOT NULL THEN 'document' END AS resolved_by
FROM stg_purchases p
LEFT JOIN by_user u ON u.k = p.user_profile_id
LEFT JOIN by_email e ON e.k = p.client_email
LEFT JOIN by_document d ON d.k = p.client_document
