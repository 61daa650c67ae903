"""The whole chain as a user runs it: `vtex-pipeline run --as-of D` over HTTP to both simulators."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, time, timedelta

import pytest
import requests
from click.testing import CliRunner

from vtex_pipeline.cli import main
from vtex_pipeline.simulators.icomm_server import create_icomm_app
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import fmt7
from vtex_pipeline_tests.profile import small_store
from vtex_pipeline_tests.profile.test_profile_fixture import EXPECTED, D

ICOMM_KEY = "icomm-e2e-SECRET-KEY-42"
PROFILE = "e2e-profile"


@pytest.fixture
def icomm(tmp_path):
    out = tmp_path / "contacts.jsonl"
    server = ServerThread(
        create_icomm_app(api_keys={ICOMM_KEY}, profiles={PROFILE}, out_path=str(out))
    ).start()
    yield server.url, out
    server.stop()


def _contacts(url: str) -> dict[str, dict[str, str]]:
    rows = requests.get(f"{url}/_sim/contacts", timeout=30).json()
    return {r["Email"]: {f["Key"]: f["Value"] for f in r["CustomFields"]} for r in rows}


def _received(out) -> list[str]:
    return [json.loads(line)["Email"] for line in out.read_text().splitlines()] if out.exists() else []


def test_run_exports_the_profile_then_only_what_changed(start_store, vtex_env, icomm, monkeypatch):
    fixture = small_store.build_store(D)
    store = start_store(fixture)
    icomm_url, out = icomm
    vtex_env(store.url)
    for var, value in {
        "VTEX_PIPELINE_TIMEZONE": small_store.TIMEZONE,
        "VTEX_SALES_CHANNELS": ",".join(small_store.SALES_CHANNELS),
        "VTEX_PIPELINE_START_DATE": (D - timedelta(days=402)).isoformat(),
        "ICOMM_BASE_URL": icomm_url,
        "ICOMM_API_KEY": ICOMM_KEY,
        "ICOMM_PROFILE_KEY": PROFILE,
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    # EXPECTED is the profile once the fixture's "cancelled later" order is cancelled.
    store.set_status(small_store.CANCELLED_LATER, "canceled")
    first = CliRunner().invoke(main, ["run", "--as-of", D.isoformat()])
    assert first.exit_code == 0, first.output

    deliverable = {
        e["email"] for e in EXPECTED.values() if e["email"] and not e["email"].endswith("ct.vtex.com.br")
    }
    contacts = _contacts(icomm_url)
    assert set(contacts) == deliverable
    assert sorted(_received(out)) == sorted(deliverable)  # each exactly once
    ana = contacts["ana@mail.com"]
    assert ana["ORDERS_30D"] == "2"
    assert ana["AMOUNT_30D"] == "150.00"
    assert ana["AVG_AMOUNT_60D"] == "56.67"
    assert ana["PRODUCTS_60D"] == "Tênis Runner, Panela Inox, Faqueiro Prata"
    assert ana["COUPONS_30D"] == "SUMMER10"
    assert ana["RFM_30D"] == "525"
    assert ana["LAST_PURCHASE_DATE"] == D.strftime("%d/%m/%Y")
    assert ana["FIRST_PURCHASE_DATE"] == (D - timedelta(days=30)).strftime("%d/%m/%Y")
    assert ana["RFM_SEGMENT"] == "FREQUENT_POTENTIAL_LOYALIST"
    assert ana["ORDERS_360PLUS"] == "0" and ana["AVG_AMOUNT_360PLUS"] == "" and ana["PRODUCTS_360PLUS"] == ""
    bruno = contacts["bruno@mail.com"]
    assert (bruno["ORDERS_30D"], bruno["RFM_60D"], bruno["RFM_SEGMENT"]) == (
        "0",
        "111",
        "FREQUENT_NEEDS_ATTENTION",
    )

    # A second run sends nothing.
    second = CliRunner().invoke(main, ["run", "--as-of", D.isoformat()])
    assert second.exit_code == 0, second.output
    assert len(_received(out)) == len(deliverable)

    # Ana, already the top spender of every window she is in, buys again on D-1: nobody else's quintiles
    # move (RFM scores are relative), so only her contact changes. The list index showed the order late
    # (its window was synced already): the next run's look-back fetches it.
    new = copy.deepcopy(fixture["orders"][0])
    new["clientProfileData"].update(userProfileId="u-ana", email="ana@mail.com", document="11111111111")
    created = datetime.combine(D - timedelta(days=1), time(12), tzinfo=UTC)
    new.update(
        orderId="1000000000099-01",
        sequence="000099",
        creationDate=fmt7(created),
        lastChange=fmt7(created),
        status="invoiced",
        salesChannel="1",
    )
    store.put_orders([new])
    third = CliRunner().invoke(main, ["run", "--as-of", D.isoformat()])
    assert third.exit_code == 0, third.output
    received = _received(out)
    assert received[len(deliverable) :] == ["ana@mail.com"]
    assert _contacts(icomm_url)["ana@mail.com"]["ORDERS_30D"] == "3"

    # The icomm key never reaches the output.
    assert ICOMM_KEY not in first.output + second.output + third.output
