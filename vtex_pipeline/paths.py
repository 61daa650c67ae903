"""Where the pipeline keeps its files, and the one rule for relative paths in configuration.

Relative paths are never resolved against whatever the working directory happens to be: they are
resolved against the *pipeline home*, `VTEX_PIPELINE_HOME` (default `~/.local/share/vtex-pipeline`, or
`$XDG_DATA_HOME/vtex-pipeline`). Relative paths inside an integrations file are resolved against that
file's folder. The repository's Makefile sets `VTEX_PIPELINE_HOME` to the checkout, so `make demo` and
`make dev` keep `data/` and `.dagster_home/` there.
"""

from __future__ import annotations

import os
from pathlib import Path


def pipeline_home() -> Path:
    """The base of relative paths and of the default DuckDB file and local Dagster instance."""
    explicit = os.environ.get("VTEX_PIPELINE_HOME")
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return (base / "vtex-pipeline").absolute()


def resolve_path(value: str | os.PathLike[str], base: Path | None = None) -> Path:
    """`value` if absolute (after `~` expansion), else `base` (default: the pipeline home) / `value`."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return (base or pipeline_home()) / path


def local_dagster_home() -> Path:
    """The Dagster instance `vtex-pipeline run`, `demo` and `dev` use when `DAGSTER_HOME` is unset:
    persistent, so their runs show in the UI afterwards."""
    env = os.environ.get("DAGSTER_HOME")
    return Path(env).expanduser().absolute() if env else pipeline_home() / ".dagster_home"
