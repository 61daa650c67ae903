-- The icomm sink's state (vtex_pipeline/icomm/delta.py, export.py); not models. Created or extended
-- (new columns added) on every export, like the raw tables.

-- Per e-mail (icomm's contact identity): the hash of the last send icomm confirmed.
CREATE TABLE IF NOT EXISTS icomm_sent (
    email       VARCHAR PRIMARY KEY,
    customer_id VARCHAR,
    hash        VARCHAR NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    as_of       DATE
);

-- What icomm refused or never confirmed: planned again on every run.
CREATE TABLE IF NOT EXISTS icomm_dead_letter (
    email           VARCHAR PRIMARY KEY,
    customer_id     VARCHAR,
    payload         JSON,
    error           VARCHAR,
    attempts        INTEGER NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at  TIMESTAMPTZ NOT NULL
);

-- The batch being sent, written before the request and emptied with the batch's outcome (one
-- transaction each). Rows left here mean the process died while icomm had the batch: the next export
-- asks icomm (ListFull) which of them it already holds with these values and records those as sent
-- instead of sending them again (icomm has no idempotency key).
CREATE TABLE IF NOT EXISTS icomm_in_flight (
    email       VARCHAR PRIMARY KEY,
    customer_id VARCHAR,
    hash        VARCHAR NOT NULL,
    as_of       DATE,
    profile_key VARCHAR NOT NULL,
    payload     JSON NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL
);
