"""Locate and read the pipeline's `.sql` files. They ship inside the package (`vtex_pipeline/sql/`, by
layer) and are read with `importlib.resources`, so an installed wheel works from any directory."""

from __future__ import annotations

import os
from functools import cache
from importlib.resources import files
from pathlib import Path


def packaged_sql_dir() -> Path:
    """The SQL shipped with the package (a plain directory: the package is never installed zipped)."""
    return Path(str(files("vtex_pipeline") / "sql"))


def sql_dir() -> Path:
    """`VTEX_PIPELINE_SQL_DIR` (an operator's edited copy, absolute or relative to the pipeline home),
    else the packaged SQL."""
    override = os.environ.get("VTEX_PIPELINE_SQL_DIR")
    if override:
        from vtex_pipeline.paths import resolve_path

        return resolve_path(override)
    return packaged_sql_dir()


@cache
def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def read_sql(relative: str) -> str:
    """Text of `<sql dir>/<relative>`, e.g. `read_sql("raw/create_raw_tables.sql")`."""
    path = sql_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"SQL file not found: {path} (VTEX_PIPELINE_SQL_DIR must hold a full copy of the packaged "
            f"SQL folder, {packaged_sql_dir()})"
        )
    return _read(str(path))
