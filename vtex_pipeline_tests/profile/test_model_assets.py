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


STAGING = [m.name for m in MODELS if not m.per_day]


def _staging_builds(cfg: IntegrationConfig) -> dict[str, object]:
    with duckdb.connect(cfg.duckdb_path) as conn:
        return dict(
            conn.execute("SELECT model, built_at FROM model_builds WHERE model LIKE 'stg_%'").fetchall()
        )


def _rebuilt(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.materialization.asset_key.path[-1]: e.materialization.metadata["rebuilt"].value
        for e in result.get_asset_materialization_events()
        if "rebuilt" in e.materialization.metadata
    }


def test_the_daily_run_keeps_the_staging_the_sync_built_and_rebuilds_it_after_a_sync(store_file, tmp_path):
    cfg = _copy(store_file, tmp_path, "daily")
    staging = dg.AssetSelection.groups(f"{cfg.name}_staging")
    first = dg.materialize(
        build_profile_assets(cfg, ProfileSettings()), resources=resources_for(cfg), selection=staging
    )
    assert _rebuilt(first) == dict.fromkeys(STAGING, True)  # the sync job's share
    built = _staging_builds(cfg)
    daily = _run(cfg, ProfileSettings(), D)
    assert daily.success
    assert _rebuilt(daily) == dict.fromkeys(STAGING, False)
    assert _staging_builds(cfg) == built  # not rebuilt: same build times
    profile = _tables(cfg)["customer_profile"]

    # a sync loads one customer again (newer synced_at): a subset of the day's models refuses the
    # staging built before it, and the staging assets rebuild
    with duckdb.connect(cfg.duckdb_path) as conn:
        conn.execute(
            "UPDATE raw_customers SET synced_at = synced_at + INTERVAL 1 DAY "
            "WHERE customer_id = (SELECT min(customer_id) FROM raw_customers)"
        )
    subset = _run(cfg, ProfileSettings(), D, dg.AssetSelection.assets([cfg.name, "int_purchases"]))
    assert not subset.success
    failure = next(e for e in subset.all_events if e.is_step_failure)
    assert "int_purchases reads stg_customers, which was built before raw" in str(
        failure.event_specific_data.error
    )
    del subset, failure
    gc.collect()
    again = _run(cfg, ProfileSettings(), D)
    assert again.success
    assert _rebuilt(again) == dict.fromkeys(STAGING, True)
    assert _tables(cfg)["customer_profile"] == profile  # synced_at alone changes no attribute


def test_staging_is_rebuilt_for_a_parameter_and_per_day_models_refuse_older_staging(store_file, tmp_path):
    cfg = _copy(store_file, tmp_path, "params")
    assert _run(cfg, ProfileSettings(), D).success
    before = _tables(cfg)["customer_profile"]
    # the profile alone, after the staging was rebuilt with other statuses: int_* were built on the old one
    settings = ProfileSettings(excluded_statuses=["canceled", "payment-pending"])  # other than the default
    staging = dg.AssetSelection.groups(f"{cfg.name}_staging")
    result = dg.materialize(
        build_profile_assets(cfg, settings), resources=resources_for(cfg), selection=staging
    )
    # stg_customers names no status: kept; stg_purchases names them; the two built on it follow
    assert _rebuilt(result) == {
        "stg_customers": False,
        "stg_purchases": True,
        "stg_order_customer": True,
        "stg_order_items": True,
    }
    profile_only = _run(cfg, settings, D, dg.AssetSelection.assets([cfg.name, "customer_profile"]))
    assert not profile_only.success
    failure = next(e for e in profile_only.all_events if e.is_step_failure)
    assert "which was built on staging tables rebuilt since" in str(failure.event_specific_data.error)
    del profile_only, failure
    gc.collect()
    assert _run(cfg, settings, D).success
    assert _tables(cfg)["customer_profile"] == before  # every order here is invoiced: same profile
