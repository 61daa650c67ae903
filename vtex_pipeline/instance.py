"""The Dagster instance the command line uses: `DAGSTER_HOME` when set, else a persistent one under the
pipeline home, so `vtex-pipeline run` and `demo` leave their runs, checks and metadata where
`vtex-pipeline dev` (the UI) shows them."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from vtex_pipeline.paths import local_dagster_home

# A range run records one "planned" event per asset instead of one per partition (Dagster reads this in
# the process that creates the run: this CLI, the webserver, the daemon). The cost: a range run that
# fails leaves its days "missing" rather than "failed" in the UI.
PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def packaged_instance_yaml() -> str:
    return (files("vtex_pipeline") / "dagster_instance.yaml").read_text(encoding="utf-8")


def prepare_dagster_home() -> Path:
    """Create the instance folder (with the packaged dagster.yaml when it has none) and point
    `DAGSTER_HOME` at it for this process and its children."""
    home = local_dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(packaged_instance_yaml(), encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault(PLANNED_EVENTS_ENV, "true")
    return home


def describe_storage(instance) -> str:
    """'PostgreSQL' / 'SQLite' / the storage class, for the lines that say where things are."""
    name = type(instance.run_storage).__name__
    if "Postgres" in name:
        return "PostgreSQL"
    if "Sqlite" in name:
        return "SQLite"
    return name
