"""The pipeline as users install it: a wheel built from the project, installed (not editable) into a
fresh virtual environment, run from an empty directory that is not the checkout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests

from vtex_pipeline.profile.models import MODELS
from vtex_pipeline_tests.wheel_venv import wheel_venv

REPO = Path(__file__).resolve().parents[1]
KEY, TOKEN = "vtexappkey-demo-LOCAL", "demo-token-not-a-secret"
ICOMM_KEY, PROFILE = "icomm-demo-key-not-a-secret", "demo-profile"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding the built wheel (vtex_pipeline_tests/wheel_venv.py)."""
    return wheel_venv(REPO, tmp_path_factory.mktemp("installed"))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "ICOMM_", "DAGSTER_"))}
    env.pop("PYTHONPATH", None)
    env.update(VTEX_PIPELINE_HOME=str(home), **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(args: list[str], cwd: Path, env: dict[str, str], url: str) -> subprocess.Popen:
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{args[1:3]} did not start")


def test_the_wheel_ships_its_data_and_no_tests(installed: Path):
    out = subprocess.check_output(
        [
            installed / "python",
            "-c",
            "import vtex_pipeline, importlib.resources as r; "
            "f = r.files('vtex_pipeline'); print(vtex_pipeline.__file__); "
            "print(sorted(p.name for p in (f / 'sql' / 'marts').iterdir())); "
            "print((f / 'icomm' / 'icomm_fields.yaml').is_file(), (f / 'sql' / 'seeds' / 'rfm_segments.csv').is_file(), (f / 'sql' / 'attributes.md').is_file());"
            "import importlib.util as u; print(u.find_spec('vtex_pipeline_tests'))",
        ],
        text=True,
        cwd=installed.parent,
        env=_env(installed.parent),
    ).splitlines()
    assert str(REPO) not in out[0] and "site-packages" in out[0]
    assert out[1] == "['customer_profile.sql']"
    assert out[2] == "True True True"  # attributes.md: the UI's column descriptions
    assert out[3] == "None"


def test_run_from_an_empty_directory_syncs_profiles_and_exports_exactly(installed: Path, tmp_path: Path):
    work = tmp_path / "empty"
    work.mkdir()
    home = tmp_path / "home"
    vtex_port, icomm_port = _free_port(), _free_port()
    contacts = tmp_path / "contacts.jsonl"
    env = _env(home)
    servers = [
        _serve(
            [
                str(installed / "vtex-pipeline"),
                "simulate",
                "vtex",
                "--port",
                str(vtex_port),
                "--customers",
                "200",
                "--orders",
                "600",
                "--seed",
                "5",
            ],
            work,
            env,
            f"http://127.0.0.1:{vtex_port}/_sim/stats",
        ),
        _serve(
            [
                str(installed / "vtex-pipeline"),
                "simulate",
                "icomm",
                "--port",
                str(icomm_port),
                "--out",
                str(contacts),
            ],
            work,
            env,
            f"http://127.0.0.1:{icomm_port}/",
        ),
    ]
    try:
        run_env = _env(
            home,
            VTEX_ACCOUNT="demostore",
            VTEX_BASE_URL=f"http://127.0.0.1:{vtex_port}",
            VTEX_APP_KEY=KEY,
            VTEX_APP_TOKEN=TOKEN,
            VTEX_REQUESTS_PER_SECOND="1000",
            ICOMM_BASE_URL=f"http://127.0.0.1:{icomm_port}",
            ICOMM_API_KEY=ICOMM_KEY,
            ICOMM_PROFILE_KEY=PROFILE,
            ICOMM_REQUESTS_PER_SECOND="50",
        )
        as_of = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        done = subprocess.run(
            [installed / "vtex-pipeline", "run", "--as-of", as_of],
            cwd=work,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        stats = requests.get(f"http://127.0.0.1:{vtex_port}/_sim/stats", timeout=10).json()
    finally:
        for s in servers:
            s.kill()
    duck = home / "data" / "vtex.duckdb"
    assert f"DuckDB file {duck}" in done.stdout
    assert f"Dagster instance: {home / '.dagster_home'} (SQLite)" in done.stdout
    assert list(work.iterdir()) == []  # nothing written to the working directory
    with duckdb.connect(str(duck), read_only=True) as conn:
        customers = conn.execute("SELECT count(*) FROM raw_customers").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM raw_orders").fetchone()[0]
        profiles = conn.execute("SELECT count(*) FROM customer_profile").fetchone()[0]
        deliverable = conn.execute(
            "SELECT count(DISTINCT lower(email)) FROM customer_profile "
            "WHERE email IS NOT NULL AND email <> '' AND email NOT LIKE '%ct.vtex.com.br'"
        ).fetchone()[0]
        # every SQL model is a table (or view) in the file, the per-day ones as of the run's day
        for model in MODELS:
            rows = conn.execute(f"SELECT count(*) FROM {model.name}").fetchone()[0]
            assert rows > 0, model.name
            if model.per_day and not model.view:
                days = conn.execute(f"SELECT DISTINCT as_of::VARCHAR FROM {model.name}").fetchall()
                assert days == [(as_of,)], model.name
    assert customers == profiles == stats["customers"] == 200
    # every order of the two years the API serves, created before the end of the as-of day
    assert 0 < orders <= stats["orders_listable"]
    sent = [json.loads(line) for line in contacts.read_text().splitlines()]
    assert len({c["Email"].lower() if "Email" in c else json.dumps(c) for c in sent}) == deliverable > 0
    # the runs are in the persistent instance the UI reads
    with dg.DagsterInstance.from_config(str(home / ".dagster_home")) as instance:
        jobs = sorted(r.job_name for r in instance.get_runs())
        assert jobs == ["vtex_profile_export", "vtex_raw_sync"]
        assert instance.get_materialized_partitions(dg.AssetKey(["vtex", "raw_orders"]))


def test_demo_from_an_empty_directory(installed: Path, tmp_path: Path):
    work = tmp_path / "empty"
    work.mkdir()
    home = tmp_path / "home"
    done = subprocess.run(
        [installed / "vtex-pipeline", "demo", "--customers", "800", "--orders", "2400"],
        cwd=work,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(work.iterdir()) == []
    lines = (home / "data" / "demo.icomm-contacts.jsonl").read_text().splitlines()
    with duckdb.connect(str(home / "data" / "demo.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM customer_profile").fetchone()[0] == 800
        buyers, scored = conn.execute(
            "SELECT count(first_purchase_date), count(p_alive) FROM customer_profile"
        ).fetchone()
        models = {r[0] for r in conn.execute("SELECT model FROM clv_model").fetchall()}
    # the demo's store has buyers who stop: the predictions are fitted and reach icomm and the dashboard
    assert scored == buyers > 500 and models == {"mbgnbd", "gamma_gamma"}
    assert "predictions: mbgnbd on" in done.stdout and "back-test: " in done.stdout, done.stdout[-3000:]
    sent = [json.loads(line) for line in lines]
    p_alive = [f["Value"] for c in sent for f in c["CustomFields"] if f["Key"] == "P_ALIVE"]
    assert len(p_alive) == 800 and sum(v != "" for v in p_alive) == scored
    assert all(0 <= float(v) <= 100 for v in p_alive if v)
    page = (home / "data" / "demo.dashboard.html").read_text()
    assert "Expected revenue of the next 365 days" in page
