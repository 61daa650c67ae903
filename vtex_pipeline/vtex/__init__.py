"""VTEX REST client: auth, rate limit, retries, paging. Knows nothing of Dagster or DuckDB."""
