"""The SQL models as assets: a subset re-materialized for a day gives the tables of a full run, and a
model never reads an upstream table left by another day."""

from __future__ import annotations

import gc
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from vtex_pipeline.assets.profile import build_profile_assets
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.profile import ProfileSettings
from vtex_pipeline.profile.models import MODELS
from vtex_pipeline.resources import resources_for
from vtex_pipeline.warehouse.connection import prepare
from vtex_pipeline.warehouse.sql_files import packaged_sql_dir
from vtex_pipeline_tests.profile.test_profile_predictions import D, simulate_orders, write_store

COMPARED = ("int_windows", "int_lists", "int_last_purchase", "int_rfm", "customer_profile")


@pytest.fixture(scope="module")
def store_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "store.duckdb"
    conn = duckdb.connect(str(path))
    prepare(conn)
    write_store(conn, simulate_orders(300, seed=11))
    conn.close()
    return path


def _copy(store_file: Path, tmp_path: Path, name: str) -> IntegrationConfig:
    target = tmp_path / f"{name}.duckdb"
    shutil.copy(store_file, target)
    return IntegrationConfig(duckdb_path=str(target), start_date=date(2025, 1, 1))


def _run(
    cfg: IntegrationConfig, settings: ProfileSettings, day: date, selection=None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_profile_assets(cfg, settings),
        partition_key=day.isoformat(),
        resources=resources_for(cfg),
        selection=selection,
        raise_on_error=False,
    )


def _tables(cfg: IntegrationConfig) -> dict[str, list[tuple]]:
    with duckdb.connect(cfg.duckdb_path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in COMPARED}


def _edited_seed(tmp_path: Path) -> ProfileSettings:
    """The seed with renamed segments: what an operator edits to match the icomm profile."""
    seed = tmp_path / "rfm_segments.csv"
    text = (packaged_sql_dir() / "seeds" / "rfm_segments.csv").read_text(encoding="utf-8")
    seed.write_text(text.replace("LOYAL", "FAITHFUL").replace("BEGINNERS", "NEWCOMERS"), encoding="utf-8")
    return ProfileSettings(rfm_segments_csv=str(seed))


def test_rematerializing_rfm_and_downstream_after_a_seed_edit_equals_a_full_run(store_file, tmp_path):
    edited = _edited_seed(tmp_path)
    subset = _copy(store_file, tmp_path, "subset")
    assert _run(subset, ProfileSettings(), D).success
    before = _tables(subset)
    assert any("LOYAL" in str(r) for r in before["customer_profile"])

    rfm_down = dg.AssetSelection.assets(dg.AssetKey([subset.name, "int_rfm"])).downstream()
    result = _run(subset, edited, D, selection=rfm_down)
    assert result.success
    built = {e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert built == {"int_rfm", "customer_profile"}

    full = _copy(store_file, tmp_path, "full")
    assert _run(full, edited, D).success
    got, want = _tables(subset), _tables(full)
    for table in COMPARED:
        assert got[table] == want[table], table
    segments = {r[-2] for r in want["int_rfm"]}
    assert any(s.startswith("FAITHFUL") for s in segments) and not any("LOYAL" in s for s in segments)
    assert got["int_windows"] == before["int_windows"]  # upstream of RFM: untouched


def test_a_model_refuses_an_upstream_table_of_another_day(store_file, tmp_path):
    cfg = _copy(store_file, tmp_path, "stale")
    assert _run(cfg, ProfileSettings(), D).success
    # int_rfm alone for the day before: int_windows still holds D
    result = _run(
        cfg, ProfileSettings(), D - timedelta(days=1), dg.AssetSelection.assets([cfg.name, "int_rfm"])
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert f"int_windows, which holds {D}" in message
    del result, failure  # the failed step's traceback holds its connection
    gc.collect()
    with duckdb.connect(cfg.duckdb_path) as conn:
        # every model's rows record their day
        for m in MODELS:
            if m.per_day and not m.view:
                assert conn.execute(f"SELECT DISTINCT as_of FROM {m.name}").fetchall() == [(D,)], m.name
