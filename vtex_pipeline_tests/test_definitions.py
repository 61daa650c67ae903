"""Snapshot of the whole definitions: what an operator sees in the Dagster UI."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from vtex_pipeline.assets.raw import INCREMENTAL_TAG
from vtex_pipeline.config import IntegrationConfig, load_integrations
from vtex_pipeline.definitions import account_resources, build_definitions
from vtex_pipeline.icomm.settings import IcommSettings
from vtex_pipeline.partitions import partition_key_for
from vtex_pipeline.paths import pipeline_home

RAW = ["raw_catalog", "raw_customers", "raw_orders"]
STAGING = ["stg_customers", "stg_order_customer", "stg_order_items", "stg_purchases"]
INTERMEDIATE = ["int_items", "int_last_purchase", "int_lists", "int_purchases", "int_rfm", "int_windows"]
ALL = sorted(["customer_profile", "dashboard", "icomm_contacts", *RAW, *STAGING, *INTERMEDIATE])
# The lineage graph of the UI: raw -> staging -> intermediate -> customer_profile -> icomm_contacts,
# the dashboard beside (on the shared staging and the profile).
EDGES = {
    ("raw_customers", "stg_customers"),
    ("raw_orders", "stg_purchases"),
    ("stg_customers", "stg_order_customer"),
    ("stg_purchases", "stg_order_customer"),
    ("raw_orders", "stg_order_items"),
    ("raw_catalog", "stg_order_items"),
    ("stg_purchases", "stg_order_items"),
    ("stg_customers", "int_purchases"),
    ("stg_purchases", "int_purchases"),
    ("stg_order_customer", "int_purchases"),
    ("int_purchases", "int_windows"),
    ("int_purchases", "int_items"),
    ("stg_order_items", "int_items"),
    ("int_purchases", "int_lists"),
    ("int_windows", "int_lists"),
    ("int_items", "int_lists"),
    ("int_purchases", "int_last_purchase"),
    ("int_items", "int_last_purchase"),
    ("int_windows", "int_rfm"),
    *((m, "customer_profile") for m in ("stg_customers", "int_purchases", "int_windows", "int_lists")),
    *((m, "customer_profile") for m in ("int_last_purchase", "int_rfm")),
    ("customer_profile", "icomm_contacts"),
    ("raw_orders", "raw_catalog"),  # the catalog sync fetches the products the orders name
    *((m, "dashboard") for m in ("raw_orders", *STAGING, "customer_profile")),
}


def _configs(*names: str) -> list[IntegrationConfig]:
    return [
        IntegrationConfig(
            name=n,
            account=n,
            start_date=date(2025, 1, 1),
            duckdb_path=f"data/{n}.duckdb",
            icomm=IcommSettings(profile_key=f"{n}-profile"),
        )
        for n in names
    ]


def _defs(*names: str) -> dg.Definitions:
    return build_definitions(_configs(*names))


def test_definitions_snapshot():
    defs = _defs("vtex")
    graph = defs.resolve_asset_graph()
    assert sorted("/".join(k.path) for k in graph.get_all_asset_keys()) == [f"vtex/{n}" for n in ALL]
    checks = {f"{c.asset_key.path[-1]}:{c.name}" for c in graph.asset_check_keys}
    assert {"raw_orders:few_rejected_orders", "raw_orders:items_belong_to_orders"} <= checks
    assert len([c for c in checks if c.startswith("customer_profile:")]) >= 6
    assert sorted(j.name for j in defs.jobs) == ["vtex_profile_export", "vtex_raw_sync"]
    assert [s.name for s in defs.schedules] == ["vtex_raw_sync_every_4h"]
    assert [s.name for s in defs.sensors] == ["vtex_profile_after_sync", "vtex_sync_watchdog"]
    # resources are bound to the account's assets, so each job carries its own account's only
    assert not defs.resources
    assert sorted(defs.resolve_job_def("vtex_raw_sync").resource_defs) == [
        "io_manager",
        "vtex_duckdb",
        "vtex_vtex",
    ]
    assert sorted(defs.resolve_job_def("vtex_profile_export").resource_defs) == [
        "io_manager",
        "vtex_duckdb",
        "vtex_icomm",
        "vtex_vtex",
    ]
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.pools == {"duckdb_vtex"}, key
        assert node.freshness_policy is not None, key
        if key.path[-1] in (
            "raw_catalog",
            "raw_customers",
            "icomm_contacts",
            "dashboard",
            *STAGING,
        ):  # not time series: one materialization per run
            assert node.partitions_def is None
            continue
        if key.path[-1] == "customer_profile" or key.path[-1].startswith("int_"):
            assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition), key
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
            continue
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
        parts = node.partitions_def
        assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
        assert (parts.cron_schedule, parts.timezone, parts.fmt) == ("0 0 * * *", "UTC", "%Y-%m-%d")
    defs.validate_loadable(defs)


def test_lineage_graph_shows_the_sql_models_between_raw_and_the_profile():
    defs = _defs("vtex")
    graph = defs.resolve_asset_graph()
    edges = {
        (parent.path[-1], key.path[-1])
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }
    assert edges == EDGES
    checks = {f"{c.asset_key.path[-1]}:{c.name}" for c in graph.asset_check_keys}
    assert {
        "int_windows:windows_never_shrink",
        "int_lists:lists_never_shrink",
        "int_rfm:rfm_codes_well_formed",
        "int_rfm:segments_add_up",
        "customer_profile:lifetime_purchases_add_up",
    } <= checks
    # the raw sync rebuilds the shared staging (its dashboard reads it); the daily job builds
    # everything from staging to the export, never the raw sync itself
    raw_job = defs.resolve_job_def("vtex_raw_sync").asset_layer.selected_asset_keys
    daily = defs.resolve_job_def("vtex_profile_export").asset_layer.selected_asset_keys
    assert sorted(k.path[-1] for k in raw_job) == sorted([*RAW, *STAGING, "dashboard"])
    assert sorted(k.path[-1] for k in daily) == sorted(set(ALL) - set(RAW))


def test_each_integration_gets_its_own_assets_and_database():
    defs = _defs("store_a", "store_b")
    keys = {"/".join(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {f"store_a/{n}" for n in ALL} | {f"store_b/{n}" for n in ALL} == keys
    for a, b in (("store_a", "store_b"), ("store_b", "store_a")):
        for job in (f"{a}_raw_sync", f"{a}_profile_export"):
            keys = set(defs.resolve_job_def(job).resource_defs)
            assert {f"{a}_duckdb", f"{a}_vtex"} <= keys
            assert not any(k.startswith(b) for k in keys), (job, keys)
    # relative paths resolve against the pipeline home, never the working directory
    for name in ("store_a", "store_b"):
        (cfg,) = [c for c in _configs(name)]
        db = account_resources(cfg)[f"{name}_duckdb"].database
        assert db == str(pipeline_home() / "data" / f"{name}.duckdb")


def test_location_snapshot_grows_linearly_with_accounts():
    """Each account's jobs carry only that account's resources (and their config schema), so adding
    accounts leaves every other account's job snapshot unchanged: the code location's snapshot (what
    the webserver and the daemon fetch) grows linearly, not with the square of the accounts."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    def job_sizes(n: int) -> dict[str, int]:
        snap = RepositorySnap.from_def(_defs(*(f"acct_{i}" for i in range(n))).get_repository_def())
        return {j.name: len(serialize_value(j)) for j in snap.job_datas or []}

    two, four, six = job_sizes(2), job_sizes(4), job_sizes(6)
    for job in ("acct_0_raw_sync", "acct_0_profile_export", "acct_1_raw_sync", "acct_1_profile_export"):
        assert six[job] == two[job], job
    # the implicit __ASSET_JOB holds every asset, so it grows too, but by the same amount per account
    first, second = sum(four.values()) - sum(two.values()), sum(six.values()) - sum(four.values())
    assert abs(second - first) <= 0.01 * first, (first, second)


def test_secrets_are_env_var_references_not_values(monkeypatch):
    monkeypatch.setenv("VTEX_APP_KEY", "key-VALUE-should-not-appear")
    monkeypatch.setenv("VTEX_APP_TOKEN", "token-VALUE-should-not-appear")
    res = account_resources(_configs("vtex")[0])["vtex_vtex"]
    dumped = repr(res) + str(res.model_dump() if hasattr(res, "model_dump") else "")
    assert "VALUE-should-not-appear" not in dumped


def _synced(instance: dg.DagsterInstance, day: str, until: datetime) -> None:
    for name, partition in (("raw_orders", day), ("raw_customers", None)):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=["vtex", name], partition=partition, metadata={"synced_until": until.isoformat()}
            )
        )


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, at: datetime) -> dg.RunRequest:
    schedule = defs.resolve_schedule_def("vtex_raw_sync_every_4h")
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
    ) as ctx:
        (req,) = schedule.evaluate_tick(ctx).run_requests
    assert req.tags[INCREMENTAL_TAG] == "true"
    return req


def test_schedule_catches_up_from_the_last_day_not_fully_synced():
    defs = _defs("vtex")
    assert defs.resolve_schedule_def("vtex_raw_sync_every_4h").cron_schedule == "10 */4 * * *"
    with dg.instance_for_test() as instance:
        _catch_up(defs, instance)


def _catch_up(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    # An instance upgraded from 4-hour partitions holds only old keys: they do not count as synced days.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=["vtex", "raw_orders"], partition="2026-11-20-04:00")
    )
    # First tick ever: the whole history up to the window that just closed, in one run.
    req = _tick(defs, instance, datetime(2026, 11, 27, 8, 10, tzinfo=UTC))
    assert req.partition_key is None and req.run_key == "2026-11-27-04:00"
    assert req.tags["dagster/asset_partition_range_start"] == "2025-01-01"
    assert req.tags["dagster/asset_partition_range_end"] == "2026-11-27"
    # Synced at 08:10: the 12:10 tick refreshes today only.
    _synced(instance, "2026-11-27", datetime(2026, 11, 27, 8, 10, tzinfo=UTC))
    req = _tick(defs, instance, datetime(2026, 11, 27, 12, 10, tzinfo=UTC))
    assert (req.partition_key, req.run_key) == ("2026-11-27", "2026-11-27-08:00")
    # 00:10 the next day: the window that closed is yesterday's last one.
    assert _tick(defs, instance, datetime(2026, 11, 28, 0, 10, tzinfo=UTC)).partition_key == "2026-11-27"
    # Once yesterday is synced to its end, 04:10 moves on to the new day.
    _synced(instance, "2026-11-27", datetime(2026, 11, 28, 0, 10, tzinfo=UTC))
    assert _tick(defs, instance, datetime(2026, 11, 28, 4, 10, tzinfo=UTC)).partition_key == "2026-11-28"
    # A sync still running (a long first sync): the tick skips instead of queueing a second one.
    running = create_run_for_test(instance, job_name="vtex_raw_sync", status=dg.DagsterRunStatus.STARTED)
    schedule = defs.resolve_schedule_def("vtex_raw_sync_every_4h")
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 11, 28, 8, 10, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    ) as ctx:
        assert "still in progress" in (schedule.evaluate_tick(ctx).skip_message or "")
    instance.report_run_failed(running)
    # The daemon was down for two days: one run from the last day not fully synced.
    req = _tick(defs, instance, datetime(2026, 11, 30, 16, 10, tzinfo=UTC))
    assert (
        req.tags["dagster/asset_partition_range_start"],
        req.tags["dagster/asset_partition_range_end"],
    ) == (
        "2026-11-28",
        "2026-11-30",
    )


def test_partition_key_is_exact_at_window_edges():
    assert partition_key_for(datetime(2026, 1, 1, 4, 0, tzinfo=UTC)) == "2026-01-01-04:00"
    assert partition_key_for(datetime(2026, 1, 1, 3, 59, 59, 999999, tzinfo=UTC)) == "2026-01-01-00:00"
    assert partition_key_for(datetime(2026, 1, 1, 3, 59, 59, 999000, tzinfo=UTC)) == "2026-01-01-00:00"


def test_relative_paths_resolve_against_the_pipeline_home(monkeypatch, tmp_path):
    monkeypatch.setenv("VTEX_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cfg = load_integrations({"VTEX_ACCOUNT": "a"}, dotenv=False)[0]
    assert cfg.duckdb_path == str(tmp_path / "home" / "data" / "vtex.duckdb")
    absolute = load_integrations({"VTEX_ACCOUNT": "a", "VTEX_PIPELINE_DUCKDB": "/srv/x.duckdb"}, dotenv=False)
    assert absolute[0].duckdb_path == "/srv/x.duckdb"


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
    assert cfgs[0].duckdb_path == str(tmp_path / "data" / "a.duckdb")  # relative to the file's folder


def test_export_is_left_out_when_icomm_is_not_configured():
    cfg = IntegrationConfig(name="vtex", account="a", start_date=date(2025, 1, 1))
    defs = build_definitions([cfg])
    keys = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "icomm_contacts" not in keys and "customer_profile" in keys
    assert "vtex_icomm" not in account_resources(cfg)
    assert "vtex_icomm" not in defs.resolve_job_def("vtex_profile_export").resource_defs


def test_a_retried_profile_run_rebuilds_the_days_models():
    """run_retries re-launches a profile run whose worker died with every step: a retry of
    customer_profile alone would read models another day's run replaced meanwhile (StaleUpstreamError)."""
    job = _defs("vtex").resolve_job_def("vtex_profile_export")
    assert job.run_tags.get("dagster/retry_strategy") == "ALL_STEPS"
    assert "dagster/retry_strategy" not in (_defs("vtex").resolve_job_def("vtex_raw_sync").run_tags or {})


def test_sensor_requests_a_day_once_it_is_synced_past_its_end():
    defs = _defs("vtex")
    sensor = defs.resolve_sensor_def("vtex_profile_after_sync")
    instance = dg.DagsterInstance.ephemeral()
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    def requested() -> list[str | None]:
        with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()) as ctx:
            return [r.partition_key for r in sensor.evaluate_tick(ctx).run_requests]

    _synced(instance, day.isoformat(), midnight - timedelta(hours=3, minutes=50))  # refreshed at 20:10
    assert requested() == []
    _synced(instance, day.isoformat(), midnight)  # the 00:10 tick synced the day's last window
    assert requested() == [day.isoformat()]


def test_loading_the_code_location_does_not_import_the_model_fitting_stack():
    """Every run imports the code location first; SciPy and pandas (about 1 s) are for profile runs only,
    so a 4-hourly sync, and the daemon launching many accounts' runs, never pays for them."""
    import subprocess
    import sys

    code = (
        "import sys, vtex_pipeline.definitions; "
        "print(sorted(m for m in ('scipy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_feed_path_exists_only_with_its_key_and_sits_after_the_profile(monkeypatch):
    cfg = IntegrationConfig(name="shop", duckdb_path="/tmp/shop.duckdb", icomm=IcommSettings(profile_key="p"))
    off = build_definitions([cfg])
    assert "shop_orders_feed" not in {s.name for s in off.sensors}
    monkeypatch.setenv("VTEX_FEED_APP_KEY", "k")
    monkeypatch.setenv("VTEX_FEED_APP_TOKEN", "t")
    defs = build_definitions([cfg])
    graph = defs.resolve_asset_graph()
    feed, events = dg.AssetKey(["shop", "feed_contacts"]), dg.AssetKey(["shop", "orders_feed_events"])
    assert graph.get(feed).parent_keys == {events, dg.AssetKey(["shop", "customer_profile"])}
    assert not graph.get(events).is_materializable  # observed by the sensor, never materialized
    assert graph.get(feed).pools == {"duckdb_shop"}  # one writer per DuckDB file, like every writer
    sensor = defs.resolve_sensor_def("shop_orders_feed")
    assert sensor.minimum_interval_seconds == 30 and sensor.job_name == "shop_orders_feed_batch"
    assert defs.resolve_job_def("shop_orders_feed_batch").asset_layer.executable_asset_keys == {feed}
    assert {c.name for c in graph.get_check_keys_for_assets([feed])} == {"feed_lag_within_bound"}
    # the daily job does not run the feed's batch
    assert feed not in defs.resolve_job_def("shop_profile_export").asset_layer.executable_asset_keys
