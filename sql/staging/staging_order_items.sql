-- Items of the purchases with their display names, resolved through the catalog with the spec's
-- fallbacks. Catalog lookups are tiny (products, categories, brands), so they are built once and
-- joined as small hash tables; the fallbacks only read the item's own columns.
--   product  = catalog product name               -> else the order item name
--   category = the product's own category (tree)  -> else the last id of additionalInfo.categoriesIds
--              resolved through the tree          -> else the first (deepest) additionalInfo.categories name
--   brand    = catalog brand of the product       -> else the catalog brand of the item's brandId
--              -> else additionalInfo.brandName
CREATE OR REPLACE TEMP TABLE stg_order_items AS
WITH categories AS (
    SELECT category_id, nullif(trim(name), '') AS name FROM raw_categories
), brands AS (
    SELECT brand_id, nullif(trim(name), '') AS name FROM raw_brands
), products AS (
    SELECT p.product_id,
           nullif(trim(p.name), '') AS product_name,
           c.name AS category_name,
           b.name AS brand_name
    FROM raw_products p
    LEFT JOIN categories c ON c.category_id = p.category_id
    LEFT JOIN brands b ON b.brand_id = p.brand_id
    WHERE p.found
), path_categories AS (   -- one row per distinct categoriesIds path such as '/1/10/100/'
    SELECT path, c.name
    FROM (
        SELECT DISTINCT categories_ids AS path,
               list_last(list_filter(string_split(categories_ids, '/'), lambda x: trim(x) <> '')) AS last_id
        FROM raw_order_items WHERE categories_ids IS NOT NULL
    ) ids
    JOIN categories c ON c.category_id = trim(ids.last_id)
)
SELECT
    o.okey,
    i.item_index,
    coalesce(p.product_name, nullif(trim(i.name), '')) AS product_name,
    coalesce(p.category_name, pc.name, nullif(trim(i.category_names[1]), '')) AS category_name,
    coalesce(p.brand_name, b.name, nullif(trim(i.brand_name), '')) AS brand_name
FROM raw_order_items i
JOIN stg_purchases o ON o.order_id = i.order_id
LEFT JOIN products p ON p.product_id = i.product_id
LEFT JOIN path_categories pc ON pc.path = i.categories_ids
LEFT JOIN brands b ON b.brand_id = i.brand_id;
