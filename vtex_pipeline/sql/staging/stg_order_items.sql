-- Items of the purchases with their display names, resolved through the catalog with the
-- fallbacks of docs/attributes.md:
--   product  = catalog product name               -> else the order item name
--   category = the product's own category (tree)  -> else the last id of additionalInfo.categoriesIds
--              resolved through the tree          -> else the first (deepest) additionalInfo.categories name
--   brand    = catalog brand of the product       -> else the catalog brand of the item's brandId
--              -> else additionalInfo.brandName
--
-- Names are dictionary-encoded: profile_name is an ENUM type of every name a list can hold (a few
-- thousand), so the 12M item rows carry small integer codes, and the grouping and sorting downstream
-- work on integers. The dictionary is built from the catalog and from the DISTINCT raw item names
-- (DISTINCT first: the columns are dictionary-compressed, trimming 13M strings is what costs). Names
-- are looked up in the small catalog tables once; an item only pays a string lookup on a fallback.
-- The type is replaced with this table (its column types depend on the dictionary); no other persisted
-- table holds profile_name values: int_lists and int_last_purchase store the names themselves.
DROP TABLE IF EXISTS stg_order_items;

CREATE OR REPLACE TYPE profile_name AS ENUM (
    SELECT DISTINCT name FROM (
        SELECT nullif(trim(name), '') AS name FROM raw_products WHERE found
        UNION ALL SELECT nullif(trim(name), '') FROM raw_categories
        UNION ALL SELECT nullif(trim(name), '') FROM raw_brands
        UNION ALL SELECT nullif(trim(n), '') FROM (SELECT DISTINCT name AS n FROM raw_order_items)
        UNION ALL SELECT nullif(trim(n), '') FROM (SELECT DISTINCT category_names[1] AS n FROM raw_order_items)
        UNION ALL SELECT nullif(trim(n), '') FROM (SELECT DISTINCT brand_name AS n FROM raw_order_items)
        UNION ALL SELECT DISTINCT coupon FROM stg_purchases
    )
    WHERE name IS NOT NULL
    ORDER BY name
);

WITH categories AS (
    SELECT category_id, nullif(trim(name), '')::profile_name AS name FROM raw_categories
), brands AS (
    SELECT brand_id, nullif(trim(name), '')::profile_name AS name FROM raw_brands
), products AS (
    SELECT p.product_id,
           nullif(trim(p.name), '')::profile_name AS product_name,
           c.name AS category_name,
           b.name AS brand_name
    FROM raw_products p
    LEFT JOIN categories c ON c.category_id = p.category_id
    LEFT JOIN brands b ON b.brand_id = p.brand_id
    WHERE p.found
), path_categories AS (   -- one row per distinct categoriesIds path such as '/1/10/100/'
    SELECT ids.path, c.name
    FROM (
        SELECT path,
               list_last(list_filter(string_split(path, '/'), lambda x: trim(x) <> '')) AS last_id
        FROM (SELECT DISTINCT categories_ids AS path FROM raw_order_items WHERE categories_ids IS NOT NULL)
    ) ids
    JOIN categories c ON c.category_id = trim(ids.last_id)
)
SELECT
    o.okey,
    i.item_index,
    -- COALESCE evaluates an argument only for the rows still NULL: the casts run on fallbacks only
    coalesce(p.product_name, nullif(trim(i.name), '')::profile_name) AS product_name,
    coalesce(p.category_name, pc.name, nullif(trim(i.category_names[1]), '')::profile_name) AS category_name,
    coalesce(p.brand_name, b.name, nullif(trim(i.brand_name), '')::profile_name) AS brand_name
FROM raw_order_items i
JOIN stg_purchases o ON o.order_id = i.order_id
LEFT JOIN products p ON p.product_id = i.product_id
LEFT JOIN path_categories pc ON pc.path = i.categories_ids
LEFT JOIN brands b ON b.brand_id = i.brand_id
