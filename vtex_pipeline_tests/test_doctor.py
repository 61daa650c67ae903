"""`vtex-pipeline doctor` on a real instance folder and real DuckDB files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vtex_pipeline.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("VTEX_ACCOUNT", "store")
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    monkeypatch.delenv("VTEX_PIPELINE_DUCKDB", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def _doctor() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor"], terminal_width=200)
    return result.exit_code, result.output


def test_a_fresh_home_passes_every_check(env: Path):
    code, out = _doctor()
    assert code == 0, out
    assert f"SQLite at {env / '.dagster_home'}" in out
    assert "limit 1" in out and "MonitoredRunLauncher checks run workers" in out and "freed after 30 s" in out
    assert "vtex: pool duckdb_vtex: free" in out
    assert "will be created" in out
    assert (env / ".dagster_home" / "dagster.yaml").is_file()


def test_a_locked_duckdb_file_names_the_process_holding_it(env: Path):
    db = env / "data" / "vtex.duckdb"
    db.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, out = _doctor()
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    assert f"locked by process {holder.pid}" in out
    time.sleep(0.2)
    assert _doctor()[0] == 0  # released with its process


def test_an_instance_without_pools_or_run_monitoring_fails(env: Path, monkeypatch):
    home = env / ".dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS")
    code, out = _doctor()
    assert code == 1
    assert "default_limit: 1" in out
    assert "free_slots_after_run_end_seconds" in out
    assert "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true" in out


def test_the_checkout_dagster_yaml_matches_the_packaged_instance_config():
    """`dagster dev` from the repository root reads ./dagster.yaml: the same settings as the package's."""
    import yaml

    from vtex_pipeline.instance import packaged_instance_yaml

    root = Path(__file__).resolve().parents[1] / "dagster.yaml"
    assert yaml.safe_load(root.read_text()) == yaml.safe_load(packaged_instance_yaml())
