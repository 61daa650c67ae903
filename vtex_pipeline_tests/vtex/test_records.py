"""Record parsers: hand-written rows, and every OpenAPI example of the endpoints we read."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import pytest

from vtex_pipeline.vtex.errors import RecordError
from vtex_pipeline.vtex.records import (
    brand_row,
    category_rows,
    customer_row,
    order_rows,
    order_summary,
    product_row,
    sales_channel_row,
    sku_row,
)
from vtex_pipeline_tests.openapi_specs import OPENAPI_DIR, needs_openapi_specs

SPECS = OPENAPI_DIR


@cache
def _spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text(encoding="utf-8"))


def _walk_examples(node: Any) -> list[Any]:
    """Every `example` value and every `examples.<name>.value` under a node."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "example":
                found.append(value)
            elif key == "examples" and isinstance(value, dict):
                for ex in value.values():
                    found.append(ex.get("value") if isinstance(ex, dict) and "value" in ex else ex)
            else:
                found.extend(_walk_examples(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk_examples(value))
    return found


def response_examples(spec: str, path: str, method: str = "get") -> list[Any]:
    """The 200 response examples (bodies only, not header examples) of one operation."""
    responses = _spec(spec)["paths"][path][method]["responses"]
    content = responses.get("200", {}).get("content", {})
    examples = _walk_examples(content)
    if not examples:
        pytest.fail(f"no examples for {method.upper()} {path} in {spec}")
    return examples


# -- hand-written --------------------------------------------------------------------------------


def _order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "orderId": "v1001-01",
        "sequence": "1001",
        "creationDate": "2025-03-19T21:44:01.4199691+00:00",
        "lastChange": "2025-03-20T10:00:00.0000000+00:00",
        "status": "invoiced",
        "salesChannel": "1",
        "origin": "Marketplace",
        "affiliateId": "",
        "value": 8250,
        "totals": [
            {"id": "Items", "name": "Items", "value": 9000},
            {"id": "Discounts", "name": "Discounts", "value": -1750},
            {"id": "Shipping", "name": "Shipping", "value": 1000},
            {"id": "Tax", "name": "Tax", "value": 0},
        ],
        "storePreferencesData": {"currencyCode": "BRL"},
        "clientProfileData": {
            "email": " FF2E1234abcd@CT.VTEX.COM.BR ",
            "firstName": "Ana",
            "lastName": "Silva",
            "document": "12345678900",
            "userProfileId": "u-42",
        },
        "marketingData": {
            "coupon": "SUMMER10",
            "utmSource": "google",
            "utmMedium": "cpc",
            "utmCampaign": "sale",
        },
        "items": [
            {
                "uniqueId": "U1",
                "id": 18,
                "productId": "6",
                "refId": "R6",
                "name": "Bay Max L",
                "quantity": 2,
                "price": 4000,
                "listPrice": 5000,
                "sellingPrice": 3500,
                "isGift": False,
                "seller": "1",
                "additionalInfo": {
                    "brandName": "Lux",
                    "brandId": "2000000",
                    "categoriesIds": "/1/10/",
                    "categories": [{"id": 10, "name": "Ração Seca"}, {"id": 1, "name": "Alimentação"}],
                },
            },
            {"uniqueId": "U2", "id": "19", "productId": 7, "quantity": 1, "price": 1000, "isGift": True},
        ],
    }
    order.update(overrides)
    return order


def test_order_rows_hand_written() -> None:
    row, items = order_rows(_order())
    assert row == {
        "order_id": "v1001-01",
        "sequence": "1001",
        "creation_date": datetime(2025, 3, 19, 21, 44, 1, 419969, tzinfo=UTC),
        "creation_date_raw": "2025-03-19T21:44:01.4199691+00:00",
        "last_change": datetime(2025, 3, 20, 10, 0, tzinfo=UTC),
        "status": "invoiced",
        "sales_channel": "1",
        "value_cents": 8250,
        "items_cents": 9000,
        "discounts_cents": -1750,
        "shipping_cents": 1000,
        "tax_cents": 0,
        "currency_code": "BRL",
        "client_email": "ff2e1234abcd@ct.vtex.com.br",
        "client_email_is_alias": True,
        "user_profile_id": "u-42",
        "client_document": "12345678900",
        "client_first_name": "Ana",
        "client_last_name": "Silva",
        "coupon": "SUMMER10",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "sale",
        "origin": "Marketplace",
        "affiliate_id": None,
        "item_count": 2,
    }
    assert items[0] == {
        "order_id": "v1001-01",
        "item_index": 0,
        "unique_id": "U1",
        "sku_id": "18",
        "product_id": "6",
        "ref_id": "R6",
        "name": "Bay Max L",
        "quantity": 2,
        "price_cents": 4000,
        "list_price_cents": 5000,
        "selling_price_cents": 3500,
        "is_gift": False,
        "brand_id": "2000000",
        "brand_name": "Lux",
        "categories_ids": "/1/10/",
        "category_names": ["Ração Seca", "Alimentação"],
        "seller": "1",
    }
    assert items[1]["item_index"] == 1
    assert items[1]["sku_id"] == "19" and items[1]["product_id"] == "7"
    assert items[1]["is_gift"] is True and items[1]["category_names"] == [] and items[1]["brand_id"] is None


def test_order_rows_optional_fields() -> None:
    row, _ = order_rows(
        _order(marketingData=None, totals=[{"id": "Items", "value": 100}], status=None, lastChange="nope")
    )
    assert row["coupon"] is None and row["utm_source"] is None
    assert row["items_cents"] == 100
    assert row["discounts_cents"] is None and row["shipping_cents"] is None and row["tax_cents"] is None
    assert row["status"] is None and row["last_change"] is None
    row, _ = order_rows(_order(clientProfileData={"email": "Real@Example.com"}))
    assert row["client_email"] == "real@example.com" and row["client_email_is_alias"] is False
    soft = "john@x.com-207700027841b.ct.vtex.com.br"
    row, _ = order_rows(_order(clientProfileData={"email": soft}))
    assert row["client_email_is_alias"] is True


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        "order",
        {k: v for k, v in _order().items() if k != "orderId"},
        _order(orderId=""),
        _order(creationDate=None),
        _order(creationDate="yesterday"),
        _order(items=None),
        _order(items={"0": {}}),
        _order(items=["not an item"]),
        _order(items=[{"name": "no sku id"}]),
    ],
)
def test_order_rows_rejects_malformed(bad: Any) -> None:
    with pytest.raises(RecordError) as info:
        order_rows(bad)
    assert info.value.reason


def test_customer_row_hand_written() -> None:
    doc = {
        "id": "b818cbda-e489-11e6-94f4-0ac138d2d42e",
        "userId": "u-42",
        "email": "  Ana.Silva@Example.COM ",
        "firstName": "Ana",
        "lastName": "Silva",
        "document": "12345678900",
        "documentType": "cpf",
        "phone": "",
        "homePhone": None,
        "cellPhone": "+5511999999999",
        "businessPhone": "+551133333333",
        "gender": "female",
        "birthDate": "1990-05-01T00:00:00",
        "isNewsletterOptIn": True,
        "createdIn": "2025-03-19T21:44:01.4199691Z",
        "updatedIn": None,
    }
    assert customer_row(doc) == {
        "customer_id": "b818cbda-e489-11e6-94f4-0ac138d2d42e",
        "user_id": "u-42",
        "email": "ana.silva@example.com",
        "email_is_valid": True,
        "first_name": "Ana",
        "last_name": "Silva",
        "document": "12345678900",
        "document_type": "cpf",
        "phone": "+5511999999999",
        "gender": "female",
        "birth_date": date(1990, 5, 1),
        "is_newsletter_opt_in": True,
        "created_in": datetime(2025, 3, 19, 21, 44, 1, 419969, tzinfo=UTC),
        "updated_in": None,
    }


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("a@b.co", True),
        ("", False),
        (None, False),
        ("not-an-email", False),
        ("a@b", False),
        ("a b@c.com", False),
        ("ff2e0000000000000000000000001328@ct.vtex.com.br", False),
        ("john@x.com-207700027841b.ct.vtex.com.br", False),
    ],
)
def test_customer_email_validity(email: str | None, valid: bool) -> None:
    row = customer_row({"id": "x", "email": email, "createdIn": "2024-01-01T00:00:00Z"})
    assert row["email_is_valid"] is valid
    if not email:
        assert row["email"] is None


def test_customer_optional_fields_malformed_become_none() -> None:
    row = customer_row(
        {
            "id": "x",
            "createdIn": "2024-01-01T00:00:00Z",
            "updatedIn": "garbage",
            "birthDate": "01/05/1990",
            "isNewsletterOptIn": "maybe",
            "firstName": {"nested": 1},
        }
    )
    assert row["updated_in"] is None and row["birth_date"] is None
    assert row["is_newsletter_opt_in"] is None and row["first_name"] is None
    assert customer_row({"id": "x", "createdIn": "2024-01-01", "birthDate": "1990-05-01"})[
        "birth_date"
    ] == date(1990, 5, 1)


@pytest.mark.parametrize(
    "bad", [None, "x", {"createdIn": "2024-01-01T00:00:00Z"}, {"id": "x"}, {"id": "x", "createdIn": "soon"}]
)
def test_customer_row_rejects_malformed(bad: Any) -> None:
    with pytest.raises(RecordError):
        customer_row(bad)


def test_catalog_rows_hand_written() -> None:
    tree = [
        {
            "id": 1,
            "name": "Dept",
            "hasChildren": True,
            "children": [
                {"id": 10, "name": "Cat", "hasChildren": True, "children": [{"id": 100, "name": "Sub"}]}
            ],
        },
        {"id": 2, "name": "Dept2", "children": []},
    ]
    assert category_rows(tree) == [
        {
            "category_id": "1",
            "name": "Dept",
            "parent_id": None,
            "depth": 0,
            "path_ids": "/1/",
            "has_children": True,
        },
        {
            "category_id": "10",
            "name": "Cat",
            "parent_id": "1",
            "depth": 1,
            "path_ids": "/1/10/",
            "has_children": True,
        },
        {
            "category_id": "100",
            "name": "Sub",
            "parent_id": "10",
            "depth": 2,
            "path_ids": "/1/10/100/",
            "has_children": False,
        },
        {
            "category_id": "2",
            "name": "Dept2",
            "parent_id": None,
            "depth": 0,
            "path_ids": "/2/",
            "has_children": False,
        },
    ]
    with pytest.raises(RecordError):
        category_rows({"id": 1})
    with pytest.raises(RecordError):
        category_rows([{"name": "no id"}])
    assert brand_row({"id": 5, "name": "B", "isActive": False}) == {
        "brand_id": "5",
        "name": "B",
        "is_active": False,
    }
    with pytest.raises(RecordError):
        brand_row({"name": "no id"})
    assert order_summary(
        {"orderId": "o1", "creationDate": "2019-02-04T10:29:11+00:00", "salesChannel": 2}
    ) == {
        "order_id": "o1",
        "creation_date": datetime(2019, 2, 4, 10, 29, 11, tzinfo=UTC),
        "status": None,
        "sales_channel": "2",
    }
    for fn in (product_row, sku_row, sales_channel_row, order_summary):
        with pytest.raises(RecordError):
            fn({})
        with pytest.raises(RecordError):
            fn(None)


# -- OpenAPI examples ----------------------------------------------------------------------------


@needs_openapi_specs
def test_openapi_order_detail_examples() -> None:
    examples = response_examples("orders-api.json", "/api/oms/pvt/orders/{orderId}")
    for example in examples:
        row, items = order_rows(example)
        assert row["order_id"] == example["orderId"]
        assert row["value_cents"] == example["value"]
        totals = {t["id"]: t["value"] for t in example["totals"]}
        assert row["items_cents"] == totals["Items"]
        assert row["discounts_cents"] == totals["Discounts"]
        assert row["discounts_cents"] <= 0
        assert row["creation_date"].tzinfo is UTC
        assert len(items) == len(example["items"]) == row["item_count"]
    ex = examples[0]
    row, items = order_rows(ex)
    assert row["order_id"] == "1172452900788-01"
    assert row["sequence"] == "502556"
    assert row["creation_date"] == datetime(2024, 2, 4, 20, 9, 43, 899958, tzinfo=UTC)
    assert row["last_change"] == datetime(2024, 2, 6, 20, 46, 11, 701074, tzinfo=UTC)
    assert row["value_cents"] == 1160 and row["items_cents"] == 99 and row["shipping_cents"] == 300
    assert row["tax_cents"] == 0 and row["discounts_cents"] == 0
    assert row["coupon"] == "sale" and row["utm_source"] == "fb" and row["utm_campaign"] == "christmas"
    assert row["currency_code"] == "BRL" and row["sales_channel"] == "1" and row["status"] == "handling"
    assert row["client_email"] == "rodrigo.smith@email.com" and row["client_email_is_alias"] is False
    assert row["user_profile_id"] == "5660c55f-714d-4b14-88a7-b03e9bfbdd2y"
    assert items[0]["sku_id"] == "18" and items[0]["product_id"] == "6"
    assert items[0]["price_cents"] == 990 and items[0]["list_price_cents"] == 1990
    assert items[0]["categories_ids"] == "/9/" and items[0]["category_names"] == ["Coach"]
    assert items[0]["brand_id"] == "2000000" and items[0]["brand_name"] == "Lux Brand"
    # the same order with marketingData null and a negative discount, as many real orders are
    variant = copy.deepcopy(ex)
    variant["marketingData"] = None
    variant["totals"][1]["value"] = -2000
    row, _ = order_rows(variant)
    assert row["coupon"] is None and row["discounts_cents"] == -2000


@needs_openapi_specs
def test_openapi_order_list_examples() -> None:
    for example in response_examples("orders-api.json", "/api/oms/pvt/orders"):
        summaries = [order_summary(item) for item in example["list"]]
        assert len(summaries) == len(example["list"])
    first = order_summary(example["list"][0])
    assert first == {
        "order_id": "1306331686122-01",
        "creation_date": datetime(2019, 2, 4, 10, 29, 11, tzinfo=UTC),
        "status": "invoiced",
        "sales_channel": "1",
    }


@needs_openapi_specs
def test_openapi_cl_document_examples() -> None:
    """The spec's CL document examples carry profile fields only; add the system fields search returns."""
    spec = _spec("masterdata-v1.json")
    op = spec["paths"]["/api/dataentities/CL/documents"]["post"]
    examples = _walk_examples(op["requestBody"]) + _walk_examples(
        spec["paths"]["/api/dataentities/CL/documents/{id}"]["patch"]["requestBody"]
    )
    assert examples
    for i, example in enumerate(examples):
        doc = {"id": f"doc-{i}", "createdIn": "2016-09-14T19:21:01.3163733Z", "updatedIn": None, **example}
        row = customer_row(doc)
        assert row["customer_id"] == f"doc-{i}"
        assert row["email"] == "clark.kent@examplemail.com" and row["email_is_valid"] is True
        assert row["first_name"] == "Clark" and row["last_name"] == "Kent"
        assert row["created_in"] == datetime(2016, 9, 14, 19, 21, 1, 316373, tzinfo=UTC)
    row = customer_row({"id": "d", "createdIn": "2016-09-14T19:21:01Z", **examples[0]})
    assert row["phone"] == "+12025550195" and row["document"] == "12345678900"
    assert row["document_type"] == "CPF" and row["is_newsletter_opt_in"] is False


@needs_openapi_specs
def test_openapi_md_search_examples_need_created_in() -> None:
    """Search without _fields returns only system fields: no createdIn, so the row is rejected."""
    for example in response_examples("masterdata-v1.json", "/api/dataentities/{acronym}/search"):
        if isinstance(example, list):
            for doc in example:
                with pytest.raises(RecordError, match="createdIn"):
                    customer_row(doc)
                assert customer_row({**doc, "createdIn": "2020-01-01T00:00:00Z"})["customer_id"] == doc["id"]


@needs_openapi_specs
def test_openapi_category_tree_examples() -> None:
    for example in response_examples(
        "catalog-api.json", "/api/catalog_system/pub/category/tree/{categoryLevels}"
    ):
        rows = category_rows(example)
        assert [r["category_id"] for r in rows if r["depth"] == 0] == [str(n["id"]) for n in example]
    by_id = {r["category_id"]: r for r in rows}
    assert by_id["1"]["name"] == "Alimentação" and by_id["1"]["has_children"] is True
    assert by_id["10"] == {
        "category_id": "10",
        "name": "Ração Seca",
        "parent_id": "1",
        "depth": 1,
        "path_ids": "/1/10/",
        "has_children": False,
    }
    assert by_id["19"]["path_ids"] == "/2/19/"
    assert len(rows) == 2 + 6 + 3


@needs_openapi_specs
def test_openapi_brand_examples() -> None:
    for example in response_examples("catalog-api.json", "/api/catalog_system/pvt/brand/list"):
        rows = [brand_row(b) for b in example]
        assert rows[0] == {"brand_id": "9280", "name": "Brand", "is_active": True}
    for example in response_examples("catalog-api.json", "/api/catalog_system/pvt/brand/pagedlist"):
        rows = [brand_row(b) for b in example["items"]]
        assert rows[1] == {"brand_id": "2000004", "name": "Calvin Klein", "is_active": True}


@needs_openapi_specs
@pytest.mark.parametrize(
    ("path", "to_row", "id_column", "last_row"),
    [
        pytest.param(
            "/api/catalog/pvt/product/{productId}",
            product_row,
            "product_id",
            {
                "product_id": "42",
                "name": "Zoom Stefan Janoski Canvas RM SB Varsity Red",
                "department_id": "2000089",
                "category_id": "2000090",
                "brand_id": "12121219",
                "ref_id": "sr_1_90",
                "link_id": "stefan-janoski-canvas-varsity-red",
                "is_active": True,
                "is_visible": True,
            },
            id="product",
        ),
        pytest.param(
            "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}",
            sku_row,
            "sku_id",
            {
                "sku_id": "2001773",
                "product_id": "2001426",
                "name_complete": "Tabela de Basquete",
                "product_name": "Tabela de Basquete",
                "sku_name": "Tabela de Basquete",
                "brand_id": "2000018",
                "brand_name": "MARCA ARGOLO TESTE",
                "product_category_ids": "/59/",
                "is_active": True,
            },
            id="sku",
        ),
    ],
)
def test_openapi_catalog_item_examples(path, to_row, id_column, last_row) -> None:
    """Every example's row keeps the example's Id; the last example's row is written out in full."""
    row = None
    for example in response_examples("catalog-api.json", path):
        row = to_row(example)
        assert row[id_column] == str(example["Id"])
    assert row == last_row


@needs_openapi_specs
def test_openapi_sales_channel_examples() -> None:
    for example in response_examples("catalog-api.json", "/api/catalog_system/pvt/saleschannel/list"):
        rows = [sales_channel_row(s) for s in example]
    assert rows[0] == {
        "sales_channel_id": "1",
        "name": "Main store",
        "is_active": True,
        "currency_code": "BRL",
        "time_zone": "E. South America Standard Time",
    }
    assert rows[1]["sales_channel_id"] == "2"
