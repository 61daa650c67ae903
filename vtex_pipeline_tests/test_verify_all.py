"""`vtex-pipeline verify --all` / `--integration NAME` over several accounts: one summary line per account,
non-zero exit when any failed, and one account's failure (401, unreachable) never stops the others."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from vtex_pipeline.cli import main
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline_tests.conftest import APP_KEY, APP_TOKEN
from vtex_pipeline_tests.deploy.daemon_stack import free_port


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def _configure(monkeypatch, tmp_path: Path, accounts: dict[str, tuple[str, str]]) -> None:
    """accounts: name -> (base_url, token); each reads its own `<NAME>_KEY` / `<NAME>_TOKEN` variables."""
    items = []
    for name, (url, token) in accounts.items():
        items.append(
            {
                "name": name,
                "account": name.replace("_", ""),
                "base_url": url,
                "duckdb_path": f"data/{name}.duckdb",
                "app_key_env": f"{name.upper()}_KEY",
                "app_token_env": f"{name.upper()}_TOKEN",
                "request_timeout": 5,
            }
        )
        monkeypatch.setenv(f"{name.upper()}_KEY", APP_KEY)
        monkeypatch.setenv(f"{name.upper()}_TOKEN", token)
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump({"integrations": items}), encoding="utf-8")
    monkeypatch.setenv("VTEX_PIPELINE_INTEGRATIONS", str(path))
    for var in ("ICOMM_PROFILE_KEY", "VTEX_ACCOUNT", "VTEX_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def _summary(output: str) -> dict[str, str]:
    """The last lines `<name>: OK` / `<name>: FAILED (...)`."""
    out = {}
    for line in output.splitlines():
        name, sep, rest = line.partition(": ")
        if sep and (rest == "OK" or rest.startswith("FAILED (")) and " " not in name:
            out[name] = rest
    return out


@pytest.fixture
def two_stores(start_store):
    return [start_store(generate_store(customers=10, orders=20, seed=s, span_days=10)) for s in (1, 2)]


def test_all_reports_every_account_and_fails_when_one_does(two_stores, monkeypatch, tmp_path):
    good_a, good_b = two_stores
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    _configure(
        monkeypatch,
        tmp_path,
        {
            "first_bad": (good_a.url, "not-the-right-token"),  # 401 first: the others are still checked
            "unreachable": (dead, APP_TOKEN),
            "good_a": (good_a.url, APP_TOKEN),
            "good_b": (good_b.url, APP_TOKEN),
        },
    )
    result = CliRunner().invoke(main, ["verify", "--all"])
    assert result.exit_code == 1, result.output
    summary = _summary(result.output)
    assert list(summary) == ["first_bad", "unreachable", "good_a", "good_b"], result.output
    assert summary["good_a"] == summary["good_b"] == "OK"
    assert summary["first_bad"].startswith("FAILED (401") and "FIRST_BAD_TOKEN" in summary["first_bad"]
    # the detail names the account's own variables, not the single-account defaults
    assert "check FIRST_BAD_KEY / FIRST_BAD_TOKEN" in result.output
    assert summary["unreachable"].startswith("FAILED (unreachable") and dead in summary["unreachable"]
    assert "not-the-right-token" not in result.output and APP_TOKEN not in result.output
    # the summary is the end of the output, in configuration order
    tail = [line for line in result.output.splitlines() if line.strip()][-4:]
    assert [line.split(":")[0] for line in tail] == list(summary)


def test_all_ok_exits_zero_and_is_the_default(two_stores, monkeypatch, tmp_path):
    good_a, good_b = two_stores
    _configure(monkeypatch, tmp_path, {"good_a": (good_a.url, APP_TOKEN), "good_b": (good_b.url, APP_TOKEN)})
    explicit = CliRunner().invoke(main, ["verify", "--all"])
    assert explicit.exit_code == 0, explicit.output
    assert _summary(explicit.output) == {"good_a": "OK", "good_b": "OK"}
    default = CliRunner().invoke(main, ["verify"])
    assert default.exit_code == 0, default.output
    assert _summary(default.output) == {"good_a": "OK", "good_b": "OK"}


def test_integration_checks_only_that_one(two_stores, monkeypatch, tmp_path):
    good_a, _ = two_stores
    _configure(monkeypatch, tmp_path, {"bad": (good_a.url, "wrong"), "good_a": (good_a.url, APP_TOKEN)})
    only_good = CliRunner().invoke(main, ["verify", "--integration", "good_a"])
    assert only_good.exit_code == 0, only_good.output
    assert _summary(only_good.output) == {"good_a": "OK"}
    only_bad = CliRunner().invoke(main, ["verify", "--integration", "bad"])
    assert only_bad.exit_code == 1
    assert list(_summary(only_bad.output)) == ["bad"]


def test_unknown_integration_and_conflicting_flags_are_clear_errors(two_stores, monkeypatch, tmp_path):
    good_a, _ = two_stores
    _configure(monkeypatch, tmp_path, {"good_a": (good_a.url, APP_TOKEN)})
    unknown = CliRunner().invoke(main, ["verify", "--integration", "nope"])
    assert unknown.exit_code == 2
    assert "nope" in unknown.output and "good_a" in unknown.output
    both = CliRunner().invoke(main, ["verify", "--all", "--integration", "good_a"])
    assert both.exit_code == 2


def test_missing_secret_fails_that_account_only(two_stores, monkeypatch, tmp_path):
    good_a, _ = two_stores
    _configure(monkeypatch, tmp_path, {"nokey": (good_a.url, APP_TOKEN), "good_a": (good_a.url, APP_TOKEN)})
    monkeypatch.delenv("NOKEY_TOKEN")
    result = CliRunner().invoke(main, ["verify", "--all"])
    assert result.exit_code == 1
    summary = _summary(result.output)
    assert summary["good_a"] == "OK"
    assert summary["nokey"].startswith("FAILED (") and "NOKEY_TOKEN" in summary["nokey"]
