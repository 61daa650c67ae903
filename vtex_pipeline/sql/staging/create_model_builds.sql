-- What each stored model was built from (profile/models.py), so that a model is rebuilt when its
-- inputs changed and never built on an upstream table built from other inputs:
--   staging models: a fingerprint of their SQL, their parameters, the raw tables' row counts and
--   newest load times, and the fingerprints of the staging models they read;
--   per-day models: the staging version (a fingerprint of every staging fingerprint) they were built on.
-- A row is written after its table, so a crash in between costs a rebuild, never a stale read.
CREATE TABLE IF NOT EXISTS model_builds (
    model       VARCHAR PRIMARY KEY,
    built_from  VARCHAR NOT NULL,
    built_at    TIMESTAMPTZ NOT NULL
);
