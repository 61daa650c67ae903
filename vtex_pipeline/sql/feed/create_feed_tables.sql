-- Tables of the Orders Feed path (vtex_pipeline/feed/), created or extended like the raw layer.
-- The events themselves are not here: the sensor stores them in the Dagster instance (observations of
-- <name>/orders_feed_events) before it commits them to VTEX, because the DuckDB file has one writer at a
-- time and a sensor must never wait for it.

-- How far the events of the inbox are applied: the storage id of the last observation processed. One row.
CREATE TABLE IF NOT EXISTS feed_state (
    processed_upto BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- One row per micro-batch that finished (the run's id), for the operator's queries.
CREATE TABLE IF NOT EXISTS feed_batches (
    run_id                 VARCHAR,
    finished_at            TIMESTAMPTZ NOT NULL,
    processed_upto         BIGINT NOT NULL,
    events                 BIGINT,
    orders                 BIGINT,
    customers_fetched      BIGINT,
    customers_recomputed   BIGINT,
    reference_as_of        VARCHAR,
    skipped_reason         VARCHAR
);
