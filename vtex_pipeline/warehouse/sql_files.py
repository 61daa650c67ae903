"""Locate and read the project's `.sql` files (kept in the top-level `sql/` folder, by layer)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


def sql_dir() -> Path:
    """The `sql/` folder: `VTEX_PIPELINE_SQL_DIR`, else the one beside the package (repo checkout)."""
    override = os.environ.get("VTEX_PIPELINE_SQL_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "sql"


@cache
def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def read_sql(relative: str) -> str:
    """Text of `sql/<relative>`, e.g. `read_sql("raw/create_raw_tables.sql")`."""
    path = sql_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"SQL file not found: {path} (set VTEX_PIPELINE_SQL_DIR to the repo's sql/ folder)"
        )
    return _read(str(path))
