"""vtex-pipeline: VTEX -> DuckDB -> icomm customer profiles, orchestrated by Dagster."""
