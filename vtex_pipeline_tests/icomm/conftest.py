"""Fixtures: an icomm simulator over real HTTP on 127.0.0.1, and a DuckDB with a hand-made profile table."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from vtex_pipeline.icomm.client import IcommClient
from vtex_pipeline.icomm.settings import IcommSettings
from vtex_pipeline_tests.icomm.profiles import create_profile_table

API_KEY = "MTIzLTQ1Ni1zdG9yZV91c3I3OA-SECRET"
PROFILE = "profile-abc"


class IcommSim:
    def __init__(self, url: str, out: Path) -> None:
        self.url = url
        self.out = out

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sim/stats", timeout=10).json()

    def contacts(self) -> dict[str, dict[str, str]]:
        rows = requests.get(f"{self.url}/_sim/contacts", timeout=10).json()
        return {r["Email"]: {c["Key"]: c["Value"] for c in r["CustomFields"]} for r in rows}

    def set_faults(self, spec: str) -> None:
        requests.post(f"{self.url}/_sim/faults", json={"spec": spec}, timeout=10).raise_for_status()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def counts(self) -> Counter[str]:
        return Counter(r["Email"] for r in self.records())


@pytest.fixture
def start_icomm(tmp_path: Path) -> Iterator[Callable[..., IcommSim]]:
    from vtex_pipeline.simulators.icomm_server import create_icomm_app
    from vtex_pipeline.simulators.server import ServerThread

    servers: list[ServerThread] = []

    def _start(**kw: Any) -> IcommSim:
        out = tmp_path / f"icomm-{len(servers)}.jsonl"
        kw.setdefault("api_keys", {API_KEY})
        kw.setdefault("profiles", {PROFILE})
        server = ServerThread(create_icomm_app(out_path=out, **kw)).start()
        servers.append(server)
        return IcommSim(server.url, out)

    yield _start
    for s in servers:
        s.stop()


@pytest.fixture
def icomm(start_icomm: Callable[..., IcommSim]) -> IcommSim:
    return start_icomm()


def make_settings(url: str, **kw: Any) -> IcommSettings:
    fields: dict[str, Any] = dict(
        base_url=url,
        profile_key=PROFILE,
        timeout=5,
        max_attempts=3,
        requests_per_second=1000,
        backoff_base=0.01,
    )
    fields.update(kw)
    return IcommSettings(**fields)


def make_client(url: str, **kw: Any) -> IcommClient:
    key = kw.pop("api_key", API_KEY)
    return IcommClient.from_settings(make_settings(url, **kw), key)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(str(tmp_path / "vtex.duckdb"))
    conn.execute("SET TimeZone = 'UTC'")
    create_profile_table(conn)
    yield conn
    conn.close()
