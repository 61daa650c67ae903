"""Formats of spec §5, checked against hand-written strings, and the SQL twin held to the Python one."""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from vtex_pipeline.icomm.fields import (
    PREDICTION_COLUMNS,
    MappingError,
    contact_payload,
    default_mapping,
    format_value,
    join_list,
    load_mapping,
    mapping_from_dict,
    packaged_mapping_file,
    sql_format_expr,
    sql_list_join_expr,
)
from vtex_pipeline_tests.icomm.profiles import create_profile_table, insert_profiles, profile_row


def test_dates_are_dd_mm_yyyy() -> None:
    assert format_value(date(2026, 3, 5)) == "05/03/2026"
    assert format_value(datetime(1990, 12, 31, 23, 59)) == "31/12/1990"
    assert format_value("1988-07-09T00:00:00", "date") == "09/07/1988"
    assert format_value("not a date", "date") == ""


def test_amounts_have_a_dot_and_two_decimals() -> None:
    assert format_value(Decimal("120.5")) == "120.50"
    assert format_value(Decimal("0")) == "0.00"
    assert format_value(Decimal("1234567.891")) == "1234567.89"
    assert format_value(Decimal("2.125"), "amount") == "2.12"  # half-even, as the profile rounds
    assert format_value(3, "amount") == "3.00"


def test_null_and_empty_are_empty_strings() -> None:
    for fmt in ("text", "date", "amount", "int", "list", "bool"):
        assert format_value(None, fmt) == ""  # type: ignore[arg-type]
    assert format_value([], "list") == ""


def test_lists_join_and_cut_at_a_whole_item() -> None:
    assert format_value(["Red Shoe", "Blue Hat"]) == "Red Shoe, Blue Hat"
    # "aaaa, bbbb" is 10 characters: fits in 10, the next item would make 16
    assert join_list(["aaaa", "bbbb", "cccc"], 10) == "aaaa, bbbb"
    assert join_list(["aaaa", "bbbb", "cccc"], 15) == "aaaa, bbbb"
    assert join_list(["aaaa", "bbbb", "cccc"], 16) == "aaaa, bbbb, cccc"
    assert join_list(["a" * 300], 250) == ""  # never half an item
    items = [f"Product number {i:03d}" for i in range(40)]  # 18 chars each, 20 with the separator
    out = format_value(items, "list", max_length=250)
    assert out == ", ".join(items[:12]) and len(out) == 238


def test_other_formats() -> None:
    assert format_value(True) == "true" and format_value(False, "bool") == "false"
    assert format_value(7) == "7"
    assert format_value("514", "text") == "514"


def test_prediction_fields() -> None:
    assert format_value(0.72663, "percent") == "72.7"
    assert format_value(1.0, "percent") == "100.0"
    assert format_value(0.0004, "percent") == "0.0"
    assert format_value(None, "percent") == ""
    assert format_value(float("nan"), "percent") == ""
    fields = {
        c["Key"]: c["Value"] for c in contact_payload(profile_row(1), default_mapping())["CustomFields"]
    }
    assert {
        k: fields[k]
        for k in fields
        if k.startswith(("P_ALIVE", "EXPECTED", "PREDICTED", "AVG_DAYS", "CHURN"))
    } == {
        "P_ALIVE": "72.7",
        "EXPECTED_ORDERS_30D": "0.08",
        "EXPECTED_ORDERS_90D": "0.24",
        "EXPECTED_ORDERS_365D": "0.81",
        "EXPECTED_AVG_ORDER_VALUE": "118.40",
        "PREDICTED_CLV_365D": "96.20",
        "EXPECTED_NEXT_ORDER_DATE": "20/01/2027",
        "AVG_DAYS_BETWEEN_ORDERS": "",
        "CHURN_RISK": "low",
    }


def test_contact_payload_shape() -> None:
    mapping = mapping_from_dict(
        {
            "fields": [
                {"column": "first_name", "key": "NOMBRE"},
                {"column": "products_30d", "key": "PRODUCTOS_30", "max_length": 9},
                {"column": "phone", "export": False},
                {"column": "avg_amount_30d"},
            ]
        }
    )
    row = {
        "email": "  Ana@Example.COM ",
        "first_name": "Ana",
        "products_30d": ["Sock", "Hat", "Cap"],
        "phone": "1",
    }
    assert contact_payload(row, mapping) == {
        "Email": "ana@example.com",
        "CustomFields": [
            {"Key": "NOMBRE", "Value": "Ana"},
            {"Key": "PRODUCTOS_30", "Value": "Sock, Hat"},
            {"Key": "AVG_AMOUNT_30D", "Value": ""},
        ],
    }


def test_default_file_is_every_column_upper_cased() -> None:
    mapping = load_mapping(packaged_mapping_file())
    assert mapping == default_mapping()
    assert len(mapping.exported) == 67  # 58 + the 9 prediction columns
    assert all(f.key == f.column.upper() for f in mapping.fields)
    assert mapping.list_max_length == 250
    assert "EMAIL" not in {f.key for f in mapping.fields}


@pytest.mark.parametrize(
    "doc",
    [
        {"fields": [{"column": "x", "format": "money"}]},
        {"fields": [{"column": "a", "key": "K"}, {"column": "b", "key": "K"}]},
        {"fields": [{"column": "a", "key": "bad key!"}]},
        {"fields": "nope"},
    ],
)
def test_bad_mappings_are_refused(doc: dict) -> None:
    with pytest.raises(MappingError):
        mapping_from_dict(doc)


def test_sql_formatting_matches_python() -> None:
    mapping = default_mapping()
    rows = [
        profile_row(1),
        profile_row(
            2,
            first_name=None,
            birth_date=date(1990, 1, 2),
            is_newsletter_opt_in=False,
            products_30d=[f"Long product name {i:02d}" for i in range(30)],
            coupons_30d=["A", None, "B"],
            amount_30d=Decimal("0.00"),
            avg_amount_30d=Decimal("99999.99"),
            last_purchase_date=None,
            days_since_last_purchase=None,
            p_alive=0.05,
            avg_days_between_orders=12.5,
            expected_orders_30d=1.005,
            churn_risk="high",
        ),
        profile_row(3, first_name="Zoë «quoted» 'x'", last_purchase_brands=["x" * 251, "y"]),
        profile_row(4, **dict.fromkeys(c for c, _ in PREDICTION_COLUMNS)),
    ]
    conn = duckdb.connect()
    create_profile_table(conn)
    insert_profiles(conn, rows)
    exprs = ", ".join(
        sql_format_expr(f.column, f.format, max_length=mapping.max_length(f), bool_values=mapping.bool_values)
        for f in mapping.exported
    )
    got = conn.execute(f"SELECT {exprs} FROM customer_profile ORDER BY customer_id").fetchall()
    for row, sql_values in zip(rows, got, strict=True):
        python_values = [c["Value"] for c in contact_payload(row, mapping)["CustomFields"]]
        assert list(sql_values) == python_values


def test_sql_date_format_accepts_text_columns() -> None:
    conn = duckdb.connect()
    expr = sql_format_expr("d", "date", max_length=250, bool_values=("true", "false"))
    got = conn.execute(
        f"SELECT {expr} FROM (VALUES ('1988-07-09T00:00:00'), ('1988-07-09'), (''), (NULL), ('junk')) t(d)"
    ).fetchall()
    assert [g[0] for g in got] == ["09/07/1988", "09/07/1988", "", "", ""]


def test_sql_list_cut_matches_python_on_random_lists() -> None:
    rng = random.Random(7)
    words = ["a", "bb", "x, y", "ção", "«»", "Long product name", "z" * 40, ",", " ", "a,", ", "]
    lists = [
        [None if rng.random() < 0.1 else rng.choice(words) for _ in range(rng.randint(0, 30))]
        for _ in range(400)
    ]
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t (i INTEGER, l VARCHAR[])")
    conn.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(lists)))
    for n in (1, 2, 3, 5, 10, 17, 40, 100, 250):
        plain = sql_format_expr("l", "list", max_length=n, bool_values=("true", "false"))
        joined = sql_format_expr("l", "list", max_length=n, bool_values=("true", "false"), joined="j")
        got = conn.execute(
            f"SELECT {plain}, {joined} FROM (SELECT *, {sql_list_join_expr('l')} AS j FROM t) ORDER BY i"
        ).fetchall()
        assert got == [(join_list(items, n), join_list(items, n)) for items in lists], n
