-- Raw layer: one table per VTEX record type, typed columns beside the full JSON of each record
-- (so a new attribute needs no re-fetch). Timestamps are TIMESTAMPTZ in UTC; money in integer cents.
-- partition_key is the 4-hour UTC window ("YYYY-MM-DD-HH:MM") the record belongs to (the sync works in
-- 4-hour windows; Dagster partitions are UTC days).

CREATE TABLE IF NOT EXISTS raw_customers (
    customer_id          VARCHAR PRIMARY KEY,   -- CL document id
    user_id              VARCHAR,               -- CL.userId = order clientProfileData.userProfileId
    email                VARCHAR,
    email_is_valid       BOOLEAN,
    first_name           VARCHAR,
    last_name            VARCHAR,
    document             VARCHAR,
    document_type        VARCHAR,
    phone                VARCHAR,
    gender               VARCHAR,
    birth_date           DATE,
    is_newsletter_opt_in BOOLEAN,
    created_in           TIMESTAMPTZ NOT NULL,
    updated_in           TIMESTAMPTZ,
    partition_key        VARCHAR NOT NULL,      -- window of the sync that last wrote the row
    synced_at            TIMESTAMPTZ NOT NULL,
    record               JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS raw_orders (
    order_id               VARCHAR PRIMARY KEY,
    sequence               VARCHAR,
    creation_date          TIMESTAMPTZ NOT NULL,
    creation_date_raw      VARCHAR NOT NULL,
    last_change            TIMESTAMPTZ,
    status                 VARCHAR,
    sales_channel          VARCHAR,
    value_cents            BIGINT,
    items_cents            BIGINT,
    discounts_cents        BIGINT,
    shipping_cents         BIGINT,
    tax_cents              BIGINT,
    currency_code          VARCHAR,
    client_email           VARCHAR,
    client_email_is_alias  BOOLEAN,
    user_profile_id        VARCHAR,
    client_document        VARCHAR,
    client_first_name      VARCHAR,
    client_last_name       VARCHAR,
    coupon                 VARCHAR,
    utm_source             VARCHAR,
    utm_medium             VARCHAR,
    utm_campaign           VARCHAR,
    origin                 VARCHAR,
    affiliate_id           VARCHAR,
    item_count             INTEGER,
    partition_key          VARCHAR NOT NULL,    -- 4-hour window of creation_date (ms precision)
    synced_at              TIMESTAMPTZ NOT NULL,
    record                 JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS raw_order_items (
    order_id             VARCHAR NOT NULL,
    item_index           INTEGER NOT NULL,      -- position in the order's items array
    unique_id            VARCHAR,
    sku_id               VARCHAR,
    product_id           VARCHAR,
    ref_id               VARCHAR,
    name                 VARCHAR,
    quantity             INTEGER,
    price_cents          BIGINT,
    list_price_cents     BIGINT,
    selling_price_cents  BIGINT,
    is_gift              BOOLEAN,
    brand_id             VARCHAR,
    brand_name           VARCHAR,
    categories_ids       VARCHAR,
    category_names       VARCHAR[],
    seller               VARCHAR,
    partition_key        VARCHAR NOT NULL,
    PRIMARY KEY (order_id, item_index)
);

CREATE TABLE IF NOT EXISTS raw_products (
    product_id     VARCHAR PRIMARY KEY,
    found          BOOLEAN NOT NULL,            -- false: the catalog answered 404 (fallbacks apply)
    name           VARCHAR,
    department_id  VARCHAR,
    category_id    VARCHAR,
    brand_id       VARCHAR,
    ref_id         VARCHAR,
    link_id        VARCHAR,
    is_active      BOOLEAN,
    is_visible     BOOLEAN,
    fetched_at     TIMESTAMPTZ NOT NULL,
    record         JSON
);

CREATE TABLE IF NOT EXISTS raw_skus (
    sku_id                VARCHAR PRIMARY KEY,
    found                 BOOLEAN NOT NULL,
    product_id            VARCHAR,
    name_complete         VARCHAR,
    product_name          VARCHAR,
    sku_name              VARCHAR,
    brand_id              VARCHAR,
    brand_name            VARCHAR,
    product_category_ids  VARCHAR,
    is_active             BOOLEAN,
    fetched_at            TIMESTAMPTZ NOT NULL,
    record                JSON
);

CREATE TABLE IF NOT EXISTS raw_categories (
    category_id   VARCHAR PRIMARY KEY,
    name          VARCHAR,
    parent_id     VARCHAR,
    depth         INTEGER,
    path_ids      VARCHAR,
    has_children  BOOLEAN,
    fetched_at    TIMESTAMPTZ NOT NULL,
    record        JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS raw_brands (
    brand_id    VARCHAR PRIMARY KEY,
    name        VARCHAR,
    is_active   BOOLEAN,
    fetched_at  TIMESTAMPTZ NOT NULL,
    record      JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS raw_sales_channels (
    sales_channel_id  VARCHAR PRIMARY KEY,
    name              VARCHAR,
    is_active         BOOLEAN,
    currency_code     VARCHAR,
    time_zone         VARCHAR,
    fetched_at        TIMESTAMPTZ NOT NULL,
    record            JSON NOT NULL
);

-- Records that could not be parsed or fetched: set aside with the reason, never silently dropped.
CREATE TABLE IF NOT EXISTS raw_rejected_records (
    source         VARCHAR NOT NULL,            -- customers | orders | products | skus | ...
    record_id      VARCHAR,
    partition_key  VARCHAR,
    reason         VARCHAR NOT NULL,
    record         VARCHAR,
    rejected_at    TIMESTAMPTZ NOT NULL
);

-- Sync watermark per source: the end of the last synced window, kept in the file, not in memory.
CREATE TABLE IF NOT EXISTS sync_state (
    source          VARCHAR PRIMARY KEY,
    watermark       TIMESTAMPTZ NOT NULL,
    last_success_at TIMESTAMPTZ NOT NULL,
    last_run        VARCHAR
);

-- 4-hour windows each source has synced: the look-back fetches late-indexed orders only into these.
CREATE TABLE IF NOT EXISTS synced_partitions (
    source         VARCHAR NOT NULL,
    partition_key  VARCHAR NOT NULL,
    synced_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, partition_key)
);
