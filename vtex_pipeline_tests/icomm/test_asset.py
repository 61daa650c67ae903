"""The icomm_contacts asset through `dagster.materialize`: metadata, dry run, and no secret anywhere."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from vtex_pipeline.assets.export import build_export_assets
from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.icomm.resource import resources_for_icomm
from vtex_pipeline.icomm.settings import IcommSettings, icomm_settings_from_env
from vtex_pipeline_tests.icomm.conftest import API_KEY, PROFILE, IcommSim
from vtex_pipeline_tests.icomm.profiles import create_profile_table, insert_profiles, profile_row

SECRETS = (API_KEY, base64.b64encode(f"{API_KEY}:".encode()).decode())


def setup(tmp_path: Path, sim: IcommSim, monkeypatch: pytest.MonkeyPatch, **kw: object):
    db = tmp_path / "vtex.duckdb"
    with duckdb.connect(str(db)) as conn:
        create_profile_table(conn)
        insert_profiles(conn, [profile_row(i) for i in range(6)] + [profile_row(9, email="a@ct.vtex.com.br")])
    monkeypatch.setenv("ICOMM_API_KEY", API_KEY)
    cfg = IntegrationConfig(name="shop", duckdb_path=str(db))
    settings = IcommSettings(
        base_url=sim.url,
        profile_key=PROFILE,
        batch_size=4,
        requests_per_second=1000,
        fields_file="",
        dry_run_dir=str(tmp_path / "dry"),
        **kw,
    )
    resources = {
        cfg.resource_key("duckdb"): DuckDBResource(database=str(db)),
        **resources_for_icomm(cfg, settings),
    }
    return cfg, settings, resources


def materialize(cfg, settings, resources, run_config=None, **kw) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_export_assets(cfg, settings), resources=resources, run_config=run_config, **kw
    )


def assert_no_secret(result: dg.ExecuteInProcessResult, caplog: pytest.LogCaptureFixture) -> str:
    texts = [caplog.text]
    for event in result.all_events:
        texts.append(str(event))
        texts.append(repr(event.event_specific_data))
    blob = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in blob
    return blob


def test_asset_exports_and_reports(
    tmp_path: Path, icomm: IcommSim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg, settings, resources = setup(tmp_path, icomm, monkeypatch)
    result = materialize(cfg, settings, resources)
    assert result.success
    meta = result.asset_materializations_for_node("shop__icomm_contacts")[0].metadata
    values = {k: v.value for k, v in meta.items()}
    assert values["sent"] == 6 and values["new"] == 6 and values["skipped_no_email"] == 1
    assert values["batches"] == 2 and values["failed"] == 0 and values["dead_letter"] == 0
    for key in ("changed", "unchanged", "retries", "seconds"):
        assert key in values
    assert len(icomm.counts()) == 6
    again = materialize(cfg, settings, resources)
    values = {
        k: v.value
        for k, v in again.asset_materializations_for_node("shop__icomm_contacts")[0].metadata.items()
    }
    assert values["sent"] == 0 and values["unchanged"] == 6
    assert "skipped_no_email" in assert_no_secret(result, caplog)  # the metadata was searched too
    assert_no_secret(again, caplog)
    spec = build_export_assets(cfg, settings)[0].specs_by_key[dg.AssetKey(["shop", "icomm_contacts"])]
    assert dg.AssetKey(["shop", "customer_profile"]) in {d.asset_key for d in spec.deps}


def test_asset_dry_run_sends_nothing(
    tmp_path: Path, icomm: IcommSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, settings, resources = setup(tmp_path, icomm, monkeypatch)
    run_config = {"ops": {"shop__icomm_contacts": {"config": {"dry_run": True}}}}
    result = materialize(cfg, settings, resources, run_config=run_config)
    assert result.success
    assert icomm.stats()["requests"] == 0
    assert (tmp_path / "dry" / "batches-0002.json").exists() and (tmp_path / "dry" / "summary.json").exists()


def test_failing_icomm_fails_the_run_without_leaking_the_key(
    tmp_path: Path, icomm: IcommSim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    icomm.set_faults("fail_batches=1,retry_after=0")
    cfg, settings, resources = setup(tmp_path, icomm, monkeypatch, max_attempts=2, backoff_base=0.01)
    result = materialize(cfg, settings, resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "dead letter" in str(failure.event_specific_data)
    assert_no_secret(result, caplog)
    # a wrong key: a clear failure, still without the (wrong) key in it
    monkeypatch.setenv("ICOMM_API_KEY", "wrong-" + API_KEY)
    icomm.set_faults("")
    result = materialize(cfg, settings, resources, raise_on_error=False)
    assert not result.success
    blob = caplog.text + "".join(str(e) for e in result.all_events)
    assert "refused the API key" in blob and "wrong-" + API_KEY not in blob


def test_settings_from_env_never_read_the_key() -> None:
    settings = icomm_settings_from_env(
        {
            "ICOMM_API_KEY": "s3cr3t",
            "ICOMM_PROFILE_KEY": "p1",
            "ICOMM_BASE_URL": "http://x/",
            "ICOMM_AUTH_SCHEME": "RAW",
        }
    )
    assert settings.profile_key == "p1" and settings.base_url == "http://x" and settings.auth_scheme == "raw"
    assert "s3cr3t" not in settings.model_dump_json() and settings.api_key_env == "ICOMM_API_KEY"
    with pytest.raises(ValueError):
        icomm_settings_from_env({"ICOMM_BATCH_SIZE": "0"})
