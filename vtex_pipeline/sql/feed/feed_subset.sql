-- The raw rows a profile of the customers behind some orders needs, copied into the scratch catalog
-- feed_scratch (an in-memory database attached by feed/recompute.py), where the unchanged models of
-- sql/staging and sql/intermediate then run over them alone. $order_ids: the orders the feed named.
--
-- Exactness: a customer's profile depends on the purchases resolved to it, and an order's resolution on
-- the CL documents that share its userProfileId, e-mail or document (stg_order_customer.sql: first match,
-- earliest created). So, by keys (a key is 'u:' userId, 'e:' e-mail or 'd:' document):
--   1. the customers sharing a key with a changed order (its owner before and after the change);
--   2. every order sharing a key with one of them (all their purchases: a purchase resolved to a
--      customer shares one of its keys);
--   3. every customer sharing a key with one of those orders (so each order resolves as in the full
--      profile: every candidate of its resolution is there).
-- Keys here are only trimmed and lower-cased, wider than staging's (aliases and empty values are
-- dropped there): a wider set copies a few more rows and changes no result.
CREATE OR REPLACE TEMP TABLE feed_order_keys AS
SELECT DISTINCT k FROM (
    SELECT 'u:' || nullif(trim(user_profile_id), '') AS k FROM raw_orders WHERE list_contains($order_ids, order_id)
    UNION ALL
    SELECT 'e:' || nullif(lower(trim(client_email)), '') FROM raw_orders WHERE list_contains($order_ids, order_id)
    UNION ALL
    SELECT 'd:' || nullif(trim(client_document), '') FROM raw_orders WHERE list_contains($order_ids, order_id)
) WHERE k IS NOT NULL;

CREATE OR REPLACE TEMP TABLE feed_customers AS   -- 1. who can own a changed order
SELECT customer_id FROM raw_customers
WHERE 'u:' || nullif(trim(user_id), '') IN (SELECT k FROM feed_order_keys)
   OR 'e:' || nullif(lower(trim(email)), '') IN (SELECT k FROM feed_order_keys)
   OR 'd:' || nullif(trim(document), '') IN (SELECT k FROM feed_order_keys);

CREATE OR REPLACE TEMP TABLE feed_customer_keys AS
SELECT DISTINCT k FROM (
    SELECT 'u:' || nullif(trim(user_id), '') AS k, customer_id FROM raw_customers
    UNION ALL SELECT 'e:' || nullif(lower(trim(email)), ''), customer_id FROM raw_customers
    UNION ALL SELECT 'd:' || nullif(trim(document), ''), customer_id FROM raw_customers
) WHERE k IS NOT NULL AND customer_id IN (SELECT customer_id FROM feed_customers);

CREATE OR REPLACE TABLE feed_scratch.raw_orders AS   -- 2. every purchase of those customers
SELECT * EXCLUDE (record) FROM raw_orders
WHERE list_contains($order_ids, order_id)
   OR 'u:' || nullif(trim(user_profile_id), '') IN (SELECT k FROM feed_customer_keys)
   OR 'e:' || nullif(lower(trim(client_email)), '') IN (SELECT k FROM feed_customer_keys)
   OR 'd:' || nullif(trim(client_document), '') IN (SELECT k FROM feed_customer_keys);

CREATE OR REPLACE TEMP TABLE feed_candidate_keys AS
SELECT DISTINCT k FROM (
    SELECT 'u:' || nullif(trim(user_profile_id), '') AS k FROM feed_scratch.raw_orders
    UNION ALL SELECT 'e:' || nullif(lower(trim(client_email)), '') FROM feed_scratch.raw_orders
    UNION ALL SELECT 'd:' || nullif(trim(client_document), '') FROM feed_scratch.raw_orders
) WHERE k IS NOT NULL;

CREATE OR REPLACE TABLE feed_scratch.raw_customers AS   -- 3. every candidate of their resolution
SELECT * EXCLUDE (record) FROM raw_customers
WHERE customer_id IN (SELECT customer_id FROM feed_customers)
   OR 'u:' || nullif(trim(user_id), '') IN (SELECT k FROM feed_candidate_keys)
   OR 'e:' || nullif(lower(trim(email)), '') IN (SELECT k FROM feed_candidate_keys)
   OR 'd:' || nullif(trim(document), '') IN (SELECT k FROM feed_candidate_keys);

CREATE OR REPLACE TABLE feed_scratch.raw_order_items AS
SELECT * FROM raw_order_items WHERE order_id IN (SELECT order_id FROM feed_scratch.raw_orders);

-- the catalog, whole (thousands of rows; its names feed the dictionary of stg_order_items)
CREATE OR REPLACE TABLE feed_scratch.raw_products AS SELECT * EXCLUDE (record) FROM raw_products;
CREATE OR REPLACE TABLE feed_scratch.raw_categories AS SELECT * EXCLUDE (record) FROM raw_categories;
CREATE OR REPLACE TABLE feed_scratch.raw_brands AS SELECT * EXCLUDE (record) FROM raw_brands;
