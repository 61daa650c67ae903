"""Dagster assets: thin wrappers that call the VTEX client and the warehouse."""
