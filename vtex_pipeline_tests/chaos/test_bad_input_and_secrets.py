"""One CLI run over a store full of bad records, with recognisable secrets and an icomm batch whose answer
is lost (one run shared by three tests: each run costs Dagster's start-up, and CI has ~90 s).

Bad records are stored or set aside with a reason and never stop the run; SQL-breaking text comes back
byte-identical; the secrets show nowhere the run wrote or printed; the lost icomm answer duplicates
no contact."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest

from chaos.run import SECRETS, Sandbox
from vtex_pipeline.icomm.export import run_export
from vtex_pipeline.icomm.fields import load_mapping
from vtex_pipeline.icomm.settings import IcommSettings
from vtex_pipeline.simulators.store import fmt7

SQL = "'); drop table x; --"
LONG = ("Zoë 🚀 Ñandú " * 120).strip()  # names are trimmed; the rest must come back as sent
COUPON = "CUPÓM-" + "X" * 3000 + SQL


def _bad_store(fixture: dict[str, Any], now: datetime) -> tuple[dict[str, Any], dict[str, str]]:
    """The fixture plus one record per bad case; returns it and {record id: case}."""
    fx = copy.deepcopy(fixture)
    tmpl_order = max(fx["orders"], key=lambda o: o["creationDate"])
    tmpl_client = fx["clients"][0]
    created = now - timedelta(days=1)
    cases: dict[str, str] = {}

    def order(case: str, n: int, **changes: Any) -> dict[str, Any]:
        o = copy.deepcopy(tmpl_order)
        o.update(
            {
                "orderId": f"99000000{n:05d}-01",
                "sequence": f"99{n:04d}",
                "creationDate": fmt7(created),
                **changes,
            }
        )
        cases[o["orderId"]] = case
        fx["orders"].append(o)
        return o

    order("no items", 1, items=[])
    order("negative value", 2, value=-12345)
    missing = order("missing value", 3)
    del missing["value"]
    order("unknown sales channel", 4, salesChannel="99")
    lost_product = order("product missing from the catalog", 5)
    lost_product["items"] = [dict(lost_product["items"][0], id="987654", productId="876543", name=LONG)]
    order("7 fractional digits and an offset", 6)
    fx["orders"][-1]["creationDate"] = (created - timedelta(hours=3)).strftime(
        "%Y-%m-%dT%H:%M:%S.1234567-03:00"
    )
    sql = order("SQL-breaking text, unicode, very long names and coupon", 7)
    sql["clientProfileData"] = dict(sql["clientProfileData"], firstName=SQL, lastName=LONG)
    sql["marketingData"] = dict(sql["marketingData"] or {}, coupon=COUPON)
    no_id_item = order("item without an id", 8)
    no_id_item["items"] = [{k: v for k, v in no_id_item["items"][0].items() if k != "id"}]

    def client(case: str, n: int, **changes: Any) -> None:
        c = copy.deepcopy(tmpl_client)
        c.update(
            {
                "id": f"bad-client-{n}",
                "userId": f"bad-user-{n}",
                "createdIn": fmt7(created, z=True),
                **changes,
            }
        )
        cases[c["id"]] = case
        fx["clients"].append(c)

    client("invalid e-mail", 1, email="not-an-email@")
    client("SQL-breaking name", 2, email="sql@example.com", firstName=SQL, lastName=LONG)
    client("missing creation date", 3, email="nodate@example.com", createdIn=None)
    client("odd date", 4, email="odd@example.com", birthDate="31/12/1990")
    return fx, cases


@pytest.fixture(scope="module")
def bad_run(small_fixture: dict[str, Any], now: datetime) -> Iterator[tuple[Sandbox, Any, dict[str, str]]]:
    fx, cases = _bad_store(small_fixture, now)
    box = Sandbox(
        "bad-input",
        fx,
        now,
        icomm_faults="lose_response=1,hang=3",
        icomm_config={"timeout": 1.5, "batch_size": 15},
    )
    try:
        result = box.run(options=("-v",))  # client debug lines too: they must be scrubbed as well
        yield box, result, cases
    finally:
        box.close()


def _db(box: Sandbox, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(box.db), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def test_bad_records_are_stored_or_set_aside_and_the_run_succeeds(bad_run: tuple) -> None:
    box, result, cases = bad_run
    assert result.rc == 0, result.output[-3000:]
    stored = {r[0] for r in _db(box, "SELECT order_id FROM raw_orders")}
    stored |= {r[0] for r in _db(box, "SELECT customer_id FROM raw_customers")}
    aside = dict(_db(box, "SELECT record_id, reason FROM raw_rejected_records WHERE reason <> ''"))
    for rid, case in cases.items():
        assert rid in stored or rid in aside, f"{case} ({rid}) neither stored nor set aside"
    row = _db(
        box,
        "SELECT client_first_name, client_last_name, coupon FROM raw_orders WHERE order_id = ?",
        ["9900000000007-01"],
    )
    assert row == [(SQL, LONG, COUPON)]
    assert _db(box, "SELECT first_name, last_name FROM raw_customers WHERE customer_id = 'bad-client-2'") == [
        (SQL, LONG)
    ]
    assert _db(box, "SELECT email_is_valid FROM raw_customers WHERE customer_id = 'bad-client-1'") in (
        [],
        [(False,)],
    )
    assert _db(box, "SELECT found FROM raw_products WHERE product_id = '876543'") == [(False,)]
    assert _db(box, "SELECT count(*) FROM customer_profile")[0][0] > 0


def test_no_secret_in_output_logs_event_log_duckdb_or_dry_run_files(bad_run: tuple) -> None:
    box, result, _ = bad_run
    # A dry run of the export writes its files under the sandbox too (grepped below).
    copy_db = box.dir / "dry.duckdb"
    shutil.copy(box.db, copy_db)
    with duckdb.connect(str(copy_db)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("DELETE FROM icomm_sent")
        settings = IcommSettings(profile_key="chaos-profile", dry_run_dir=str(box.dir / "icomm-dry-run"))
        report = run_export(conn, None, load_mapping(settings.fields_file), settings, dry_run=True)
    assert report.planned > 0 and any((box.dir / "icomm-dry-run").iterdir())
    assert any((box.home / "history").rglob("*.db"))  # the Dagster event log is there to be grepped
    assert "DEBUG" in result.output  # the client's debug lines were on
    assert box.secrets_found() == []
    assert all(s not in result.output for s in SECRETS)


def test_icomm_lost_response_duplicates_no_contact(bad_run: tuple) -> None:
    """icomm wrote the batch but the answer never came: the client times out and sends it again;
    icomm's contact set and `icomm_sent` hold each contact once."""
    box, result, _ = bad_run
    assert result.rc == 0
    stats = box.icomm_stats()
    assert stats["lost_responses"] == 1
    _, contacts = box.snapshot()
    emails = [e for e, _ in contacts]
    assert len(emails) == len(set(emails))
    sent = _db(box, "SELECT email, count(*) FROM icomm_sent GROUP BY email")
    assert {e for e, _ in sent} == set(emails) and all(n == 1 for _, n in sent)
    assert stats["accepted"] > len(emails)  # the lost batch really was written twice
    assert _db(box, "SELECT count(*) FROM icomm_dead_letter")[0][0] == 0
