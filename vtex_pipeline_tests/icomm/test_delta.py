"""The export plan on its own: what counts as changed, the two hashes, the numbering of the contacts to send."""

from __future__ import annotations

from typing import Any

import duckdb

from vtex_pipeline.icomm.delta import PLAN_TABLE, ExportPlan, plan_export
from vtex_pipeline.icomm.fields import FieldMapping, default_mapping, mapping_from_dict, profile_columns
from vtex_pipeline_tests.icomm.profiles import insert_profiles, profile_row, update_profile

MAPPING = default_mapping()
# 26 items of 12 characters: the first 18 fill 250 characters, the rest is cut
LONG = [f"Product {i:04d}" for i in range(26)]


def plan(db: duckdb.DuckDBPyConnection, mapping: FieldMapping = MAPPING) -> ExportPlan:
    return plan_export(db, mapping, profile_key="profile-abc")


def confirm(db: duckdb.DuckDBPyConnection) -> None:
    """What the export records once icomm confirms every planned contact."""
    db.execute(
        f"""INSERT INTO icomm_sent SELECT email, customer_id, hash, now(), as_of FROM {PLAN_TABLE}
            ON CONFLICT (email) DO UPDATE SET hash = excluded.hash"""
    )


def planned(db: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT rn, email, action FROM {PLAN_TABLE} ORDER BY rn").fetchall()


def values(p: ExportPlan, db: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    return {
        row["email"]: {c["Key"]: c["Value"] for c in row["contact"]["CustomFields"]}
        for batch in p.batches(db, 100)
        for row in batch
    }


def test_a_source_change_that_formats_the_same_is_not_sent(db: duckdb.DuckDBPyConnection) -> None:
    insert_profiles(db, [profile_row(i, products_90d=LONG) for i in range(6)])
    assert plan(db).counts["new"] == 6
    confirm(db)
    update_profile(db, "c00004", first_name="Renamed")
    update_profile(db, "c00002", products_90d=[*LONG, "One more"])  # beyond the 250-character cut
    update_profile(db, "c00003", coupons_30d=None)  # NULL and [] are both sent as ""
    update_profile(db, "c00001", rfm_segment="CHAMPIONS")
    update_profile(db, "c00005", last_purchase_brands=["Acme", None])  # NULL items are skipped
    p = plan(db)
    assert (p.counts["changed"], p.counts["unchanged"], p.to_send) == (2, 4, 2)
    # numbered 1..n in e-mail order, the contacts formatted but unchanged left out
    assert planned(db) == [(1, "buyer1@example.com", "changed"), (2, "buyer4@example.com", "changed")]
    assert values(p, db)["buyer4@example.com"]["FIRST_NAME"] == "Renamed"
    assert [len(b) for b in p.batches(db, 1)] == [1, 1]
    confirm(db)
    assert plan(db).counts["unchanged"] == 6


def test_cut_lists(db: duckdb.DuckDBPyConnection) -> None:
    tricky = [
        LONG,
        ["a, b" * 20, "c" * 100, "d" * 100, "e"],  # an item holding the separator
        [None, "x" * 240, None, "yy", "z", "w" * 10],  # NULL items are skipped
        ["ü" * 200, "«»" * 20, "z" * 20],  # characters, not bytes
        ["q" * 251, "r"],  # never half an item
    ]
    insert_profiles(db, [profile_row(i, products_30d=items) for i, items in enumerate(tricky)])
    got = {email: v["PRODUCTS_30D"] for email, v in values(plan(db), db).items()}
    assert got == {
        "buyer0@example.com": ", ".join(LONG[:18]),
        "buyer1@example.com": "a, b" * 20 + ", " + "c" * 100,
        "buyer2@example.com": "x" * 240 + ", yy, z",
        "buyer3@example.com": "ü" * 200 + ", " + "«»" * 20,
        "buyer4@example.com": "",
    }


def test_hashes_from_before_the_hash_change_resend_everyone_once(db: duckdb.DuckDBPyConnection) -> None:
    insert_profiles(db, [profile_row(i) for i in range(4)])
    plan(db)
    confirm(db)
    db.execute("UPDATE icomm_sent SET hash = sha256(hash)")  # 64 hex digits, as the sha256 scheme stored
    assert plan(db).counts["changed"] == 4
    confirm(db)
    assert plan(db).counts["unchanged"] == 4


def test_a_mapping_change_resends_only_the_values_it_changes(db: duckdb.DuckDBPyConnection) -> None:
    insert_profiles(db, [profile_row(0, products_90d=LONG), profile_row(1), profile_row(2)])
    plan(db)
    confirm(db)
    shorter = mapping_from_dict(
        {"list_max_length": 100, "fields": [{"column": c} for c, _ in profile_columns()]}
    )
    p = plan(db, shorter)  # the same field names: only the long list formats differently
    assert (p.counts["changed"], p.counts["unchanged"]) == (1, 2)
    assert values(p, db)["buyer0@example.com"]["PRODUCTS_90D"] == ", ".join(LONG[:7])
    confirm(db)
    assert plan(db, shorter).counts["unchanged"] == 3


def test_an_unchanged_dead_lettered_contact_is_retried_with_its_values(db: duckdb.DuckDBPyConnection) -> None:
    insert_profiles(db, [profile_row(i) for i in range(3)])
    plan(db)
    confirm(db)
    sent_hash = db.execute("SELECT hash FROM icomm_sent WHERE email = 'buyer1@example.com'").fetchone()[0]
    db.execute(
        "INSERT INTO icomm_dead_letter VALUES ('buyer1@example.com', 'c00001', NULL, 'timeout', 1, now(), now())"
    )
    p = plan(db)
    assert (p.counts["retry"], p.counts["unchanged"], p.dead_letter_replanned) == (1, 2, 1)
    assert values(p, db)["buyer1@example.com"]["FIRST_NAME"] == "Name1"
    assert db.execute(f"SELECT hash FROM {PLAN_TABLE}").fetchone()[0] == sent_hash


def test_classification_without_exported_fields(db: duckdb.DuckDBPyConnection) -> None:
    insert_profiles(
        db, [profile_row(1), profile_row(2, email="TWICE@example.com"), profile_row(3, email=None)]
    )
    insert_profiles(db, [profile_row(4, email=" twice@example.com", last_purchase_date=None)])
    nothing = mapping_from_dict({"fields": [{"column": "first_name", "export": False}]})
    p = plan(db, nothing)
    assert (p.counts["new"], p.counts["skipped_no_email"], p.counts["skipped_duplicate_email"]) == (2, 1, 1)
    assert [r[1] for r in planned(db)] == ["buyer1@example.com", "twice@example.com"]


def test_key_columns_can_be_exported_too(db: duckdb.DuckDBPyConnection) -> None:
    insert_profiles(db, [profile_row(i) for i in range(3)])
    keys = mapping_from_dict(
        {
            "fields": [
                {"column": "customer_id", "key": "ID"},
                {"column": "as_of", "format": "date"},
                {"column": "email", "key": "MAIL"},
            ]
        }
    )
    p = plan(db, keys)
    assert p.counts["new"] == 3
    assert values(p, db)["buyer2@example.com"] == {
        "ID": "c00002",
        "AS_OF": "26/11/2026",
        "MAIL": "buyer2@example.com",
    }
    confirm(db)
    update_profile(db, "c00001", email="New1@example.com")
    p = plan(db, keys)
    assert (p.counts["new"], p.counts["unchanged"]) == (1, 2)
    assert values(p, db)["new1@example.com"]["MAIL"] == "New1@example.com"
