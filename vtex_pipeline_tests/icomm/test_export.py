"""The export end to end against the simulator: delta, dead letter, recovery, dry run, deliverability."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from vtex_pipeline.icomm.client import IcommAuthError
from vtex_pipeline.icomm.export import ExportReport, run_export
from vtex_pipeline.icomm.fields import default_mapping
from vtex_pipeline_tests.icomm.conftest import IcommSim, make_client, make_settings
from vtex_pipeline_tests.icomm.profiles import insert_profiles, profile_row, update_profile

MAPPING = default_mapping()


def export(conn: duckdb.DuckDBPyConnection, sim: IcommSim, **kw: Any) -> ExportReport:
    """One export run against `sim`; keyword args go to the settings (batch_size, max_attempts, ...)."""
    max_failed = kw.pop("max_failed_batches", 100)
    with make_client(sim.url, **kw) as client:
        return run_export(conn, client, MAPPING, make_settings(sim.url, **kw), max_failed_batches=max_failed)


def sent_table(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT email FROM icomm_sent").fetchall()}


def dead_letter(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, int]]:
    rows = conn.execute("SELECT email, error, attempts FROM icomm_dead_letter").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_second_run_sends_nothing(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(i) for i in range(7)])
    first = export(db, icomm, batch_size=3)
    assert (first.new, first.sent, first.batches, first.failed) == (7, 7, 3, 0)
    second = export(db, icomm, batch_size=3)
    assert (second.new, second.changed, second.unchanged, second.sent, second.requests) == (0, 0, 7, 0, 0)
    assert set(icomm.counts().values()) == {1} and len(icomm.counts()) == 7
    stored = icomm.contacts()["buyer3@example.com"]
    assert stored["FIRST_NAME"] == "Name3"
    assert stored["LAST_PURCHASE_DATE"] == "16/11/2026"
    assert stored["AMOUNT_30D"] == "120.50" and stored["AVG_AMOUNT_360PLUS"] == ""
    assert stored["PRODUCTS_30D"] == "Red Shoe" and stored["IS_NEWSLETTER_OPT_IN"] == "true"
    assert len(stored) == 67  # 58 profile fields + 9 predictions


def test_one_changed_profile_sends_exactly_that_contact(
    db: duckdb.DuckDBPyConnection, icomm: IcommSim
) -> None:
    insert_profiles(db, [profile_row(i) for i in range(5)])
    export(db, icomm)
    update_profile(db, "c00002", rfm_segment="BEGINNERS_PROMISING")
    report = export(db, icomm)
    assert (report.new, report.changed, report.unchanged, report.sent) == (0, 1, 4, 1)
    records = icomm.records()
    assert len(records) == 6 and records[-1]["Email"] == "buyer2@example.com"
    assert icomm.contacts()["buyer2@example.com"]["RFM_SEGMENT"] == "BEGINNERS_PROMISING"


def test_a_value_that_became_empty_is_sent_as_empty(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(1)])
    export(db, icomm)
    assert icomm.contacts()["buyer1@example.com"]["PRODUCTS_30D"] == "Red Shoe"
    update_profile(db, "c00001", products_30d=[], avg_amount_30d=None, first_name=None)
    assert export(db, icomm).sent == 1
    last = {c["Key"]: c["Value"] for c in icomm.records()[-1]["CustomFields"]}
    assert last["PRODUCTS_30D"] == "" and last["AVG_AMOUNT_30D"] == "" and last["FIRST_NAME"] == ""
    assert icomm.contacts()["buyer1@example.com"]["PRODUCTS_30D"] == ""  # cleared in icomm


def test_no_contact_without_a_deliverable_email_is_sent(
    db: duckdb.DuckDBPyConnection, icomm: IcommSim
) -> None:
    bad = [
        None,
        "",
        "   ",
        "no-at-sign",
        "a@b",
        "4f2c9a@ct.vtex.com.br",
        "X1Y2-abc@CT.VTEX.COM.BR",
        "a b@c.com",
    ]
    rows = [profile_row(i, email=e) for i, e in enumerate(bad)]
    rows += [
        profile_row(100, email=" Good@Example.com "),
        profile_row(101, email="twice@example.com", last_purchase_date=None),
        profile_row(102, email="TWICE@example.com"),  # same contact for icomm: the latest buyer wins
    ]
    insert_profiles(db, rows)
    report = export(db, icomm)
    assert (report.skipped_no_email, report.skipped_duplicate_email, report.sent) == (len(bad), 1, 2)
    assert set(icomm.counts()) == {"good@example.com", "twice@example.com"}
    assert icomm.contacts()["twice@example.com"]["FIRST_NAME"] == "Name102"
    assert icomm.stats()["rejected"] == 0


def test_icomm_failing_a_third_of_the_batches_then_recovering(
    db: duckdb.DuckDBPyConnection, icomm: IcommSim
) -> None:
    emails = {f"buyer{i}@example.com" for i in range(60)}
    insert_profiles(db, [profile_row(i) for i in range(60)])
    icomm.set_faults("fail_batches=0.33,seed=1,retry_after=0")
    first = export(db, icomm, batch_size=5, max_attempts=1)
    assert 0 < first.failed_batches < 12 and first.failed == 5 * first.failed_batches
    assert first.sent + first.failed == 60
    failed = set(dead_letter(db))
    assert len(failed) == first.failed and not failed & sent_table(db)
    assert all("503" in err and n == 1 for err, n in dead_letter(db).values())
    assert set(icomm.counts()) == emails - failed and set(icomm.counts().values()) == {1}

    icomm.set_faults("")  # icomm recovers
    second = export(db, icomm, batch_size=5, max_attempts=1)
    assert (second.new, second.retried_dead_letter, second.sent, second.failed) == (first.failed,) * 3 + (0,)
    assert second.dead_letter == 0 and dead_letter(db) == {}
    counts = icomm.counts()
    assert set(counts) == emails and set(counts.values()) == {1}  # every contact there, none twice
    assert export(db, icomm, batch_size=5).sent == 0


def test_retries_absorb_failures_within_a_run(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(i) for i in range(30)])
    icomm.set_faults("fail_batches=0.33,seed=2,retry_after=0,rate429=0.1")
    report = export(db, icomm, batch_size=5, max_attempts=6)
    assert report.sent == 30 and report.failed_batches == 0 and report.retries > 0
    assert set(icomm.counts().values()) == {1} and len(icomm.counts()) == 30


def test_many_failed_batches_in_a_row_stop_the_run(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(i) for i in range(20)])
    icomm.set_faults("fail_batches=1,retry_after=0")
    report = export(db, icomm, batch_size=2, max_attempts=1, max_failed_batches=3)
    assert (report.batches, report.failed, report.not_attempted, report.dead_letter) == (3, 6, 14, 6)
    icomm.set_faults("")
    assert export(db, icomm, batch_size=2).sent == 20


def test_refused_contacts_go_to_the_dead_letter_and_are_retried(
    db: duckdb.DuckDBPyConnection, start_icomm: Callable[..., IcommSim]
) -> None:
    insert_profiles(db, [profile_row(i) for i in range(4)])
    blocking = start_icomm(blocked_emails={"buyer2@example.com"})
    first = export(db, blocking)
    assert (first.sent, first.failed, first.dead_letter) == (3, 1, 1)
    error, attempts = dead_letter(db)["buyer2@example.com"]
    assert "bounce" in error and attempts == 1
    again = export(db, blocking)  # unchanged, but dead-lettered: planned again
    assert (again.planned, again.retried_dead_letter, again.failed) == (1, 1, 1)
    assert dead_letter(db)["buyer2@example.com"][1] == 2
    payload = json.loads(db.execute("SELECT payload FROM icomm_dead_letter").fetchone()[0])
    assert payload["Email"] == "buyer2@example.com" and len(payload["CustomFields"]) == 67

    healed = start_icomm()
    third = export(db, healed)
    assert (third.planned, third.sent, third.dead_letter) == (1, 1, 0)
    assert list(healed.counts()) == ["buyer2@example.com"]


def test_a_crash_mid_export_loses_and_resends_nothing(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(i) for i in range(10)])

    class Crash(Exception):
        pass

    with make_client(icomm.url) as client:
        real = client.save_multi_contact
        calls = {"n": 0}

        def flaky(contacts: list) -> list:
            calls["n"] += 1
            if calls["n"] == 3:
                raise Crash("worker killed")
            return real(contacts)

        client.save_multi_contact = flaky  # type: ignore[method-assign]
        with pytest.raises(Crash):
            run_export(db, client, MAPPING, make_settings(icomm.url, batch_size=3))
    assert len(sent_table(db)) == 6  # the two confirmed batches were recorded as they finished
    rest = export(db, icomm, batch_size=3)
    assert (rest.new, rest.sent) == (4, 4)
    assert set(icomm.counts().values()) == {1} and len(icomm.counts()) == 10


def _die_on_batch(client: Any, n: int, *, after_icomm_applied: bool) -> type[BaseException]:
    """The process dies on batch `n`: after icomm applied it (the answer never read), or before.
    Returns the exception type the death raises."""

    class Death(BaseException):  # not an Exception: nothing in the export may catch it
        pass

    real, calls = client.save_multi_contact, {"n": 0}

    def dying(contacts: list) -> list:
        calls["n"] += 1
        if calls["n"] == n:
            if after_icomm_applied:
                real(contacts)
            raise Death("worker killed")
        return real(contacts)

    client.save_multi_contact = dying
    return Death


@pytest.mark.parametrize("applied", [True, False], ids=["icomm_had_applied_it", "icomm_never_got_it"])
def test_a_death_with_a_batch_in_flight_sends_each_contact_once(
    db: duckdb.DuckDBPyConnection, icomm: IcommSim, applied: bool
) -> None:
    """icomm has no idempotency key: the batch in flight is journaled before its request, and the next
    export asks icomm (ListFull) which of its contacts it already holds with the values sent."""
    insert_profiles(db, [profile_row(i) for i in range(10)])
    with make_client(icomm.url) as client:
        death = _die_on_batch(client, 2, after_icomm_applied=applied)
        with pytest.raises(death):
            run_export(db, client, MAPPING, make_settings(icomm.url, batch_size=3))
    flight = {r[0] for r in db.execute("SELECT email FROM icomm_in_flight").fetchall()}
    assert len(flight) == 3 and len(sent_table(db)) == 3
    rest = export(db, icomm, batch_size=3)
    assert (rest.in_flight_confirmed, rest.in_flight_resent) == ((3, 0) if applied else (0, 3))
    assert rest.sent == (4 if applied else 7)
    assert db.execute("SELECT count(*) FROM icomm_in_flight").fetchone()[0] == 0
    assert len(sent_table(db)) == 10
    assert set(icomm.counts().values()) == {1} and len(icomm.counts()) == 10  # nobody sent twice
    assert export(db, icomm, batch_size=3).sent == 0


def test_a_contact_in_flight_that_icomm_holds_with_other_values_is_sent_again(
    db: duckdb.DuckDBPyConnection, icomm: IcommSim
) -> None:
    insert_profiles(db, [profile_row(i) for i in range(3)])
    with make_client(icomm.url) as client:
        death = _die_on_batch(client, 1, after_icomm_applied=False)
        with pytest.raises(death):
            run_export(db, client, MAPPING, make_settings(icomm.url, batch_size=3))
        # an older version of one contact is in icomm (say, from another tool): not what was in flight
        payload = json.loads(
            db.execute("SELECT payload FROM icomm_in_flight WHERE email = 'buyer1@example.com'").fetchone()[0]
        )
        older = {**payload, "CustomFields": [{**f, "Value": "x"} for f in payload["CustomFields"]]}
        client.save_multi_contact([older])
    rest = export(db, icomm, batch_size=3)
    assert (rest.in_flight_confirmed, rest.in_flight_resent, rest.sent) == (0, 3, 3)
    assert icomm.contacts()["buyer1@example.com"] == {f["Key"]: f["Value"] for f in payload["CustomFields"]}


def test_wrong_key_aborts_and_records_nothing(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(i) for i in range(3)])
    with pytest.raises(IcommAuthError):
        export(db, icomm, api_key="not-the-key-000")
    assert sent_table(db) == set() and dead_letter(db) == {}


def test_days_since_fields_can_be_switched_off(db: duckdb.DuckDBPyConnection, icomm: IcommSim) -> None:
    insert_profiles(db, [profile_row(i) for i in range(3)])
    export(db, icomm, export_days_since=False)
    assert "DAYS_SINCE_LAST_PURCHASE" not in icomm.contacts()["buyer0@example.com"]
    db.execute("UPDATE customer_profile SET days_since_last_purchase = days_since_last_purchase + 1")
    assert export(db, icomm, export_days_since=False).sent == 0  # the next day: nothing to send
    assert export(db, icomm).sent == 3  # with them on, every buyer changes daily


def test_dry_run_writes_the_exact_bodies_and_sends_nothing(
    db: duckdb.DuckDBPyConnection, icomm: IcommSim, tmp_path: Path
) -> None:
    insert_profiles(db, [profile_row(i) for i in range(7)] + [profile_row(50, email="x@ct.vtex.com.br")])
    out = tmp_path / "dry"
    settings = make_settings(icomm.url, batch_size=3)
    report = run_export(db, None, MAPPING, settings, dry_run=True, dry_run_dir=out)
    assert report.dry_run and report.batches == 3 and report.sent == 0
    assert icomm.stats().get("requests", 0) == 0 and sent_table(db) == set()
    assert sorted(p.name for p in out.iterdir()) == [
        "batches-0001.json",
        "batches-0002.json",
        "batches-0003.json",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["new"], summary["changed"], summary["unchanged"], summary["skipped_no_email"]) == (
        7,
        0,
        0,
        1,
    )
    bodies = [(out / f"batches-{i:04d}.json").read_bytes() for i in (1, 2, 3)]

    # the real run sends byte-identical bodies: capture them on the wire
    with make_client(icomm.url) as client:
        wire: list[bytes] = []
        send = client.session.post

        def spy(url: str, data: bytes, **kw: Any) -> Any:
            wire.append(data)
            return send(url, data=data, **kw)

        client.session.post = spy  # type: ignore[method-assign]
        run_export(db, client, MAPPING, settings)
    assert wire == bodies
    assert json.loads(bodies[0])["ProfileKey"] == settings.profile_key
    assert [r["Email"] for r in icomm.records()] == [
        c["Email"] for b in bodies for c in json.loads(b)["ContactList"]
    ]
