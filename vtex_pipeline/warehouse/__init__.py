"""DuckDB helpers: connections, schema, partition loads. Knows nothing of HTTP."""
