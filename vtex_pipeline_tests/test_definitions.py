"""Snapshot of the whole definitions: what an operator sees in the Dagster UI."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from vtex_pipeline.config import IntegrationConfig, load_integrations
from vtex_pipeline.definitions import build_definitions
from vtex_pipeline.icomm.settings import IcommSettings
from vtex_pipeline.partitions import partition_key_for

RAW = ["raw_catalog", "raw_customers", "raw_orders"]
ALL = ["customer_profile", "dashboard", "icomm_contacts", *RAW]


def _defs(*names: str) -> dg.Definitions:
    cfgs = [
        IntegrationConfig(
            name=n,
            account=n,
            start_date=date(2025, 1, 1),
            duckdb_path=f"data/{n}.duckdb",
            icomm=IcommSettings(profile_key=f"{n}-profile"),
        )
        for n in names
    ]
    return build_definitions(cfgs)


def test_definitions_snapshot():
    defs = _defs("vtex")
    graph = defs.resolve_asset_graph()
    assert sorted("/".join(k.path) for k in graph.get_all_asset_keys()) == [f"vtex/{n}" for n in ALL]
    checks = {f"{c.asset_key.path[-1]}:{c.name}" for c in graph.asset_check_keys}
    assert {"raw_orders:few_rejected_orders", "raw_orders:items_belong_to_orders"} <= checks
    assert len([c for c in checks if c.startswith("customer_profile:")]) >= 7
    assert sorted(j.name for j in defs.jobs) == ["vtex_profile_export", "vtex_raw_sync"]
    assert [s.name for s in defs.schedules] == ["vtex_raw_sync_every_4h"]
    assert [s.name for s in defs.sensors] == ["vtex_profile_after_sync"]
    assert sorted(defs.resources) == ["vtex_duckdb", "vtex_icomm", "vtex_vtex"]
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.pools == {"duckdb"}, key
        assert node.freshness_policy is not None, key
        if key.path[-1] in (
            "raw_catalog",
            "icomm_contacts",
            "dashboard",
        ):  # not time series: one materialization per run
            assert node.partitions_def is None
            continue
        if key.path[-1] == "customer_profile":
            assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
            continue
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
        parts = node.partitions_def
        assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
        assert (parts.cron_schedule, parts.timezone, parts.fmt) == ("0 */4 * * *", "UTC", "%Y-%m-%d-%H:%M")
    defs.validate_loadable(defs)


def test_each_integration_gets_its_own_assets_and_database():
    defs = _defs("store_a", "store_b")
    keys = {"/".join(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {f"store_a/{n}" for n in ALL} | {f"store_b/{n}" for n in ALL} == keys
    assert defs.resources["store_a_duckdb"].database == "data/store_a.duckdb"
    assert defs.resources["store_b_duckdb"].database == "data/store_b.duckdb"


def test_secrets_are_env_var_references_not_values(monkeypatch):
    monkeypatch.setenv("VTEX_APP_KEY", "key-VALUE-should-not-appear")
    monkeypatch.setenv("VTEX_APP_TOKEN", "token-VALUE-should-not-appear")
    defs = _defs("vtex")
    res = defs.resources["vtex_vtex"]
    dumped = repr(res) + str(res.model_dump() if hasattr(res, "model_dump") else "")
    assert "VALUE-should-not-appear" not in dumped


def test_schedule_requests_the_window_that_just_closed():
    defs = _defs("vtex")
    schedule = defs.resolve_schedule_def("vtex_raw_sync_every_4h")
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 8, 10, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    (req,) = schedule.evaluate_tick(ctx).run_requests
    assert req.partition_key == "2026-11-27-04:00"
    assert schedule.cron_schedule == "10 */4 * * *"


def test_partition_key_is_exact_at_window_edges():
    assert partition_key_for(datetime(2026, 1, 1, 4, 0, tzinfo=UTC)) == "2026-01-01-04:00"
    assert partition_key_for(datetime(2026, 1, 1, 3, 59, 59, 999999, tzinfo=UTC)) == "2026-01-01-00:00"
    assert partition_key_for(datetime(2026, 1, 1, 3, 59, 59, 999000, tzinfo=UTC)) == "2026-01-01-00:00"


def test_integrations_yaml(tmp_path):
    path = tmp_path / "integrations.yaml"
    path.write_text(
        "integrations:\n"
        "  - {name: store_a, account: a, sales_channels: ['1'], duckdb_path: data/a.duckdb}\n"
        "  - {name: store_b, account: b, app_key_env: B_KEY, app_token_env: B_TOKEN}\n"
    )
    cfgs = load_integrations({"VTEX_PIPELINE_INTEGRATIONS": str(path)}, dotenv=False)
    assert [(c.name, c.account, c.sales_channels, c.app_key_env) for c in cfgs] == [
        ("store_a", "a", ["1"], "VTEX_APP_KEY"),
        ("store_b", "b", None, "B_KEY"),
    ]


def test_export_is_left_out_when_icomm_is_not_configured():
    cfg = IntegrationConfig(name="vtex", account="a", start_date=date(2025, 1, 1))
    defs = build_definitions([cfg])
    keys = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "icomm_contacts" not in keys and "customer_profile" in keys
    assert "vtex_icomm" not in defs.resources


def test_sensor_requests_a_day_once_its_last_window_is_synced(tmp_path):
    defs = _defs("vtex")
    sensor = defs.resolve_sensor_def("vtex_profile_after_sync")
    instance = dg.DagsterInstance.ephemeral()
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    last = partition_key_for(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20))
    for name in ("raw_orders", "raw_customers"):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["vtex", name], partition=last))
    ctx = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
    requests = list(sensor.evaluate_tick(ctx).run_requests)
    assert [r.partition_key for r in requests] == [day.isoformat()]
