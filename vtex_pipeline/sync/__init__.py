"""Sync passes: VTEX client in, raw DuckDB tables out. Plain Python, no Dagster, so the CLI, the assets
and the benchmarks share one code path."""
