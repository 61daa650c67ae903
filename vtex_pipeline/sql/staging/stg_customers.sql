-- Every CL document with a compact integer key (joins on it are far cheaper than on 36-char ids),
-- its contact fields as the profile shows them, and created_date (createdIn in the store time zone:
-- a customer is in the profile of D when created_date <= D). All documents are kept: order resolution
-- looks at all of them. Independent of the as-of day: built once per sync, shared by every date.
SELECT
    rowid AS ckey,   -- unique within the statement; row_number() OVER () would materialize every row
    customer_id,
    nullif(trim(user_id), '') AS user_id,
    nullif(lower(trim(email)), '') AS email_normalized,
    -- a masked Conversation Tracker alias is never an e-mail
    CASE WHEN NOT suffix(lower(trim(email)), 'ct.vtex.com.br') THEN nullif(lower(trim(email)), '') END AS email,
    first_name,
    last_name,
    nullif(trim(document), '') AS document,
    phone,
    gender,
    birth_date,
    is_newsletter_opt_in,
    created_in,
    timezone($timezone, created_in)::DATE AS created_date
FROM raw_customers;
