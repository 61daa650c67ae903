"""The command line as a user drives it: `verify`, `run --as-of` (twice), clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from click.testing import CliRunner

from vtex_pipeline.cli import main
from vtex_pipeline.partitions import end_of_day_utc, window_start
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.vtex.dates import parse_vtex_datetime
from vtex_pipeline_tests.conftest import APP_KEY, APP_TOKEN
from vtex_pipeline_tests.helpers import query


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def _recent(days: int):
    return (datetime.now(UTC) - timedelta(days=days)).date()


def test_run_twice_syncs_up_to_the_day_then_has_nothing_to_do(start_store, vtex_env, monkeypatch):
    fixture = generate_store(customers=150, orders=500, seed=21, span_days=30)
    store = start_store(fixture)
    cfg = vtex_env(store.url, start_date=_recent(35), timezone="America/Sao_Paulo")
    monkeypatch.setenv("VTEX_PIPELINE_START_DATE", cfg.start_date.isoformat())
    monkeypatch.setenv("VTEX_PIPELINE_TIMEZONE", "America/Sao_Paulo")
    as_of = _recent(2)

    first = CliRunner().invoke(main, ["run", "--as-of", as_of.isoformat()])
    assert first.exit_code == 0, first.output
    assert "synced days" in first.output

    # Every order created before the end of D in São Paulo time (03:00 UTC next day) is stored; the last
    # 4-hour window synced is the one holding that instant.
    end = end_of_day_utc(as_of, "America/Sao_Paulo")
    assert end.hour == 3
    expected = {o["orderId"] for o in fixture["orders"] if parse_vtex_datetime(o["creationDate"]) < end}
    stored = {r[0] for r in query(cfg, "SELECT order_id FROM raw_orders")}
    assert expected <= stored
    assert all(
        parse_vtex_datetime(o["creationDate"]) < end + timedelta(hours=1)
        for o in fixture["orders"]
        if o["orderId"] in stored
    )
    assert query(cfg, "SELECT count(*) FROM raw_customers")[0][0] == 150

    # The second run re-syncs only the last window (and re-lists the look-back): nothing changes.
    last_window = window_start(end - timedelta(microseconds=1))
    day = last_window.date().isoformat()
    second = CliRunner().invoke(main, ["run", "--as-of", as_of.isoformat()])
    assert second.exit_code == 0, second.output
    assert f"synced days {day} .. {day} (UTC; orders from {last_window.isoformat()}" in second.output
    # Both runs are in the persistent instance under the pipeline home, as the UI would show them.
    assert "Dagster instance:" in second.output and ".dagster_home (SQLite)" in second.output
    assert {r[0] for r in query(cfg, "SELECT order_id FROM raw_orders")} == stored


def test_verify_lists_permissions_and_sales_channels(start_store, vtex_env):
    store = start_store(generate_store(customers=10, orders=20, seed=2, span_days=10))
    vtex_env(store.url)
    result = CliRunner().invoke(main, ["verify"])
    assert result.exit_code == 0, result.output
    assert result.output.count("OK") == 9  # 8 permissions, then the summary line
    assert result.output.rstrip().splitlines()[-1] == "vtex: OK"
    assert "Loja principal" in result.output
    assert APP_TOKEN not in result.output


def test_verify_names_the_missing_permission(start_store, vtex_env):
    keys = {APP_KEY: {"token": APP_TOKEN, "permissions": ["oms.view_order", "masterdata.read_documents"]}}
    store = start_store(generate_store(customers=10, orders=20, seed=2, span_days=10), app_keys=keys)
    vtex_env(store.url)
    result = CliRunner().invoke(main, ["verify"])
    assert result.exit_code == 1
    assert "OMS / List Orders" in result.output and "missing" in result.output


def test_verify_checks_the_orders_feed_key_when_the_feed_is_on(start_store, vtex_env, monkeypatch):
    feed_key, feed_token = "vtexappkey-x-FEED", "feed-T0KEN-secret"
    keys = {
        APP_KEY: {"token": APP_TOKEN, "permissions": ["*"]},
        feed_key: {"token": feed_token, "permissions": ["oms.feed"]},
        "vtexappkey-x-NOFEED": {"token": feed_token, "permissions": ["oms.view_order"]},
    }
    store = start_store(generate_store(customers=10, orders=20, seed=2, span_days=10), app_keys=keys)
    vtex_env(store.url)
    monkeypatch.setenv("VTEX_FEED_APP_KEY", feed_key)
    monkeypatch.setenv("VTEX_FEED_APP_TOKEN", feed_token)
    ok = CliRunner().invoke(main, ["verify"])
    assert ok.exit_code == 0, ok.output
    flat = " ".join(ok.output.split())  # rich wraps long lines
    assert (
        "Orders Feed key (VTEX_FEED_APP_KEY): OMS / Feed v3 and Hook Admin: allowed; no feed configured yet"
        in flat
    )
    monkeypatch.setenv("VTEX_FEED_APP_KEY", "vtexappkey-x-NOFEED")
    missing = CliRunner().invoke(main, ["verify"])
    assert missing.exit_code == 1
    flat = " ".join(missing.output.split())
    assert "the feed key lacks OMS / Feed v3 and Hook Admin" in flat
    assert "VTEX_FEED_APP_KEY / VTEX_FEED_APP_TOKEN" in flat
    assert feed_token not in missing.output and APP_TOKEN not in missing.output


def test_verify_wrong_token_says_so(start_store, vtex_env):
    store = start_store(generate_store(customers=10, orders=20, seed=2, span_days=10))
    vtex_env(store.url, app_token="not-the-right-token")
    result = CliRunner().invoke(main, ["verify"])
    assert result.exit_code == 1
    assert "401" in result.output and "VTEX_APP_TOKEN" in result.output
    assert "not-the-right-token" not in result.output


def test_run_without_an_account_is_one_clear_error(monkeypatch, tmp_path):
    for var in ("VTEX_ACCOUNT", "VTEX_BASE_URL", "VTEX_PIPELINE_INTEGRATIONS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--as-of", "2026-01-01"])
    assert result.exit_code == 2
    assert "VTEX_ACCOUNT" in result.output
    assert not (tmp_path / "data").exists()  # nothing written before the configuration is valid


def test_one_failing_account_does_not_stop_the_others(start_store, monkeypatch, tmp_path):
    store = start_store(generate_store(customers=40, orders=120, seed=4, span_days=10))
    start = _recent(12).isoformat()
    (tmp_path / "integrations.yaml").write_text(
        "integrations:\n"
        f"  - {{name: brand_a, account: a, base_url: '{store.url}', duckdb_path: '{tmp_path}/a.duckdb',\n"
        f"     app_key_env: A_KEY, app_token_env: A_TOKEN, start_date: '{start}', requests_per_second: 500}}\n"
        f"  - {{name: brand_b, account: b, base_url: '{store.url}', duckdb_path: '{tmp_path}/b.duckdb',\n"
        f"     app_key_env: B_KEY, app_token_env: B_TOKEN, start_date: '{start}', requests_per_second: 500}}\n"
    )
    monkeypatch.setenv("VTEX_PIPELINE_INTEGRATIONS", str(tmp_path / "integrations.yaml"))
    monkeypatch.setenv("A_KEY", APP_KEY)
    monkeypatch.setenv("A_TOKEN", APP_TOKEN)
    monkeypatch.setenv("B_KEY", APP_KEY)
    monkeypatch.setenv("B_TOKEN", "wrong-token-for-b")

    result = CliRunner().invoke(main, ["run", "--as-of", _recent(1).isoformat()])

    assert result.exit_code == 1
    assert "brand_a: synced days" in result.output
    assert "brand_b: failed" in result.output and "401" in result.output
    assert "wrong-token-for-b" not in result.output
    with duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_customers").fetchone()[0] == 40
