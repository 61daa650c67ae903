"""A hand-made VTEX store of nine CL documents whose profile is worked out by hand in the tests.

Dates are relative to D (the profile date, a few days before today so the simulator's two-year horizon,
checked against real time, serves every order). Orders are placed at 12:00 UTC (09:00 in Sao Paulo,
the store time zone) unless a case needs another hour. Records are real VTEX shapes: a generated
store's order is the template, and only the fields under test are overridden.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.store import fmt7

TIMEZONE = "America/Sao_Paulo"
SALES_CHANNELS = ["1", "2"]

# Catalog: two departments; products 8 and 9 are sold but missing from the catalog.
CATEGORY_TREE = [
    {
        "id": 1,
        "name": "Moda",
        "hasChildren": True,
        "url": "https://x/moda",
        "children": [
            {
                "id": 10,
                "name": "Calçados",
                "hasChildren": True,
                "url": "https://x/moda/calcados",
                "children": [
                    {"id": 100, "name": "Tênis", "hasChildren": False, "url": "https://x/t", "children": []}
                ],
            }
        ],
    },
    {
        "id": 2,
        "name": "Casa",
        "hasChildren": True,
        "url": "https://x/casa",
        "children": [
            {
                "id": 20,
                "name": "Cozinha",
                "hasChildren": True,
                "url": "https://x/casa/cozinha",
                "children": [
                    {
                        "id": 200,
                        "name": "Panelas",
                        "hasChildren": False,
                        "url": "https://x/p",
                        "children": [],
                    },
                    {
                        "id": 201,
                        "name": "Talheres",
                        "hasChildren": False,
                        "url": "https://x/ta",
                        "children": [],
                    },
                ],
            }
        ],
    },
]
BRANDS = [
    {
        "id": 2000001,
        "name": "Aurora",
        "isActive": True,
        "title": "Aurora",
        "metaTagDescription": "",
        "imageUrl": None,
    },
    {
        "id": 2000002,
        "name": "Boreal",
        "isActive": True,
        "title": "Boreal",
        "metaTagDescription": "",
        "imageUrl": None,
    },
]


def _product(pid: int, name: str, dept: int, category: int, brand: int) -> dict[str, Any]:
    return {
        "Id": pid,
        "Name": name,
        "DepartmentId": dept,
        "CategoryId": category,
        "BrandId": brand,
        "LinkId": f"p-{pid}",
        "RefId": f"REF{pid}",
        "IsVisible": True,
        "IsActive": True,
        "Description": name,
        "Title": name,
    }


PRODUCTS = [
    _product(1, "Tênis Runner", 1, 100, 2000001),
    _product(2, "Panela Inox", 2, 200, 2000002),
    _product(3, "Faqueiro Prata", 2, 201, 2000002),
]

# SKU templates: (sku id, product id, item name, categoriesIds, categories (deepest first), brand id, brandName)
SKUS: dict[str, tuple[str, str, str, str, list[dict[str, Any]], str, str]] = {
    "1001": (
        "1001",
        "1",
        "Tênis Runner 38",
        "/1/10/100/",
        [{"id": 100, "name": "Tênis"}],
        "2000001",
        "Aurora",
    ),
    "1002": (
        "1002",
        "1",
        "Tênis Runner 40",
        "/1/10/100/",
        [{"id": 100, "name": "Tênis"}],
        "2000001",
        "Aurora",
    ),
    "2001": (
        "2001",
        "2",
        "Panela Inox 24cm",
        "/2/20/200/",
        [{"id": 200, "name": "Panelas"}],
        "2000002",
        "Boreal",
    ),
    "3001": (
        "3001",
        "3",
        "Faqueiro Prata 24p",
        "/2/20/201/",
        [{"id": 201, "name": "Talheres"}],
        "2000002",
        "Boreal",
    ),
    # missing product: its category path resolves through the tree; its brand id is unknown
    "9001": (
        "9001",
        "9",
        "Garrafa Térmica 500ml",
        "/2/20/200/",
        [{"id": 200, "name": "Old Panelas"}],
        "2000099",
        "Marca Fantasma",
    ),
    # missing product: its category path is not in the tree (falls back to the item's category name);
    # its brand id is a catalog brand (whose catalog name wins over the item's brandName)
    "8001": (
        "8001",
        "8",
        "Squeeze Sport 1L",
        "/9/99/",
        [{"id": 99, "name": "Garrafas"}, {"id": 9, "name": "Esporte"}],
        "2000002",
        "Boreal Antiga",
    ),
}

# (id, userId, email, document, first, last, phone, gender, birthDate, optin, created days after D)
CLIENTS = [
    (
        "cl-ana",
        "u-ana",
        "ana@mail.com",
        "11111111111",
        "Ana",
        "Silva",
        "+5511911111111",
        "female",
        "1990-05-01",
        True,
        -700,
    ),
    (
        "cl-bruno",
        "u-bruno",
        "bruno@mail.com",
        "22222222222",
        "Bruno",
        "Souza",
        "+5511922222222",
        "male",
        None,
        False,
        -700,
    ),
    (
        "cl-carla",
        "u-carla",
        "carla@mail.com",
        "33333333333",
        "Carla",
        "Lima",
        None,
        None,
        "1985-12-31",
        None,
        -700,
    ),
    (
        "cl-edu",
        "u-edu",
        "edu@mail.com",
        "44444444444",
        "Eduardo",
        "Costa",
        "+5511944444444",
        "male",
        None,
        True,
        -700,
    ),
    (
        "cl-fer",
        "u-fer",
        "fernanda@mail.com",
        "55555555555",
        "Fernanda",
        "Dias",
        None,
        "female",
        None,
        False,
        -700,
    ),
    (
        "cl-gabi",
        "u-gabi",
        "gabriel@mail.com",
        "66666666666",
        "Gabriel",
        "Rocha",
        None,
        "male",
        None,
        True,
        -700,
    ),
    (
        "cl-helena",
        "u-helena",
        "7f3a9c@ct.vtex.com.br",
        "77777777777",
        "Helena",
        "Gomes",
        None,
        None,
        None,
        None,
        -30,
    ),
    ("cl-igor", "u-igor", "igor@mail.com", "88888888888", "Igor", "Alves", None, None, None, None, 1),
    (
        "cl-julia",
        "u-julia",
        " Julia@Example.COM ",
        "99999999999",
        "Julia",
        "Martins",
        None,
        "female",
        None,
        True,
        -700,
    ),
]

# (orderId, days before D, value cents, items [(sku, price cents)], coupon, userProfileId, email, document,
#  status, sales channel, UTC time of day)
ALIAS = "0a1b2c3d4e5f@ct.vtex.com.br"


def _order(
    oid: str,
    days: int,
    value: int,
    items: list[tuple[str, int]],
    upid: str | None,
    doc: str,
    *,
    coupon: str | None = None,
    email: str = ALIAS,
    status: str = "invoiced",
    channel: str = "1",
    at: time = time(12),
) -> tuple:
    """One ORDERS row; by default an invoiced order of sales channel 1 at 12:00 UTC with the masked e-mail."""
    return (oid, days, value, items, coupon, upid, email, doc, status, channel, at)


ORDERS: list[tuple] = [
    # Ana: masked e-mail, resolved through userProfileId (even though A2 carries Bruno's document);
    # A3 is placed at 01:30 UTC on D-29, which is 22:30 on D-30 in Sao Paulo.
    _order(
        "1000000000001-01",
        0,
        10000,
        [("1001", 5000), ("2001", 5000)],
        "u-ana",
        "11111111111",
        coupon=" summer10 ",
    ),
    _order("1000000000002-01", 29, 5000, [("2001", 5000)], "u-ana", "22222222222", coupon=""),
    _order(
        "1000000000003-01", 29, 2000, [("3001", 2000)], "u-ana", "11111111111", channel="2", at=time(1, 30)
    ),
    # Bruno: guest orders (unknown userProfileId, alias e-mail) resolved by document; B2 has two SKUs of
    # the same product.
    _order("1000000000004-01", 59, 3000, [("1001", 3000)], "guest-1", "22222222222"),
    _order("1000000000005-01", 60, 3000, [("1001", 1500), ("1002", 1500)], "guest-2", "22222222222"),
    # Carla: C2 cancelled from the start; C4 is cancelled after the first sync (the test does it).
    _order("1000000000006-01", 89, 4000, [("2001", 4000)], "u-carla", "33333333333"),
    _order("1000000000007-01", 90, 4000, [("3001", 4000)], "u-carla", "33333333333", status="canceled"),
    _order("1000000000008-01", 90, 1000, [("3001", 1000)], "u-carla", "33333333333"),
    _order("1000000000009-01", 2, 7000, [("1001", 7000)], "u-carla", "33333333333"),
    # Eduardo: the 179/180, 359/360 boundaries and a 360+ purchase; coupons in mixed spellings.
    _order("1000000000010-01", 179, 2500, [("1001", 2500)], "u-edu", "44444444444", coupon="Welcome "),
    _order("1000000000011-01", 180, 2500, [("2001", 2500)], "u-edu", "44444444444", coupon="welcome"),
    _order("1000000000012-01", 359, 1000, [("3001", 1000)], "u-edu", "44444444444"),
    _order("1000000000013-01", 360, 1000, [("9001", 1000)], "u-edu", "44444444444"),
    _order("1000000000014-01", 400, 1500, [("1001", 1500)], "u-edu", "44444444444", coupon="vip15"),
    # Fernanda: no userProfileId, her real e-mail (odd case) and Gabriel's document: the e-mail wins.
    _order(
        "1000000000015-01",
        10,
        3000,
        [("8001", 3000)],
        None,
        "66666666666",
        email="Fernanda@Mail.com",
        channel="2",
    ),
    # Gabriel: G1 ties Fernanda's amount; G2 is in sales channel 3, outside the selection.
    _order("1000000000016-01", 5, 3000, [("2001", 3000)], "u-gabi", "66666666666", status="handling"),
    _order("1000000000017-01", 3, 9999, [("1001", 9999)], "u-gabi", "66666666666", channel="3"),
    # Julia: six purchases (F = 5).
    *(
        _order(f"10000000001{n:02d}-01", d, 1000, [("3001", 1000)], "u-julia", "99999999999")
        for n, d in enumerate((100, 120, 140, 160, 200, 250))
    ),
]
CANCELLED_LATER = "1000000000009-01"


def _at(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=UTC)


def build_store(as_of: date) -> dict[str, Any]:
    """The fixture dict for profile date `as_of` (D)."""
    template = generate_store(customers=1, orders=1, seed=1)
    order_tpl = template["orders"][0]
    client_tpl = template["clients"][0]
    item_tpl = order_tpl["items"][0]

    clients = []
    for cid, uid, email, doc, first, last, phone, gender, birth, optin, created in CLIENTS:
        cl = copy.deepcopy(client_tpl)
        cl.update(
            id=cid,
            userId=uid,
            email=email,
            document=doc,
            firstName=first,
            lastName=last,
            phone=phone,
            homePhone=None,
            cellPhone=None,
            businessPhone=None,
            gender=gender,
            birthDate=f"{birth}T00:00:00Z" if birth else None,
            isNewsletterOptIn=optin,
            createdIn=fmt7(_at(as_of + timedelta(days=created), time(12)), z=True),
            updatedIn=None,
        )
        clients.append(cl)

    orders = []
    for oid, days, value, items, coupon, upid, email, doc, status, channel, at in ORDERS:
        o = copy.deepcopy(order_tpl)
        created = _at(as_of - timedelta(days=days), at)
        o_items = []
        for sku, price in items:
            sid, pid, name, cat_ids, cats, brand_id, brand_name = SKUS[sku]
            it = copy.deepcopy(item_tpl)
            it.update(
                id=sid, productId=pid, name=name, price=price, listPrice=price, sellingPrice=price, quantity=1
            )
            it["uniqueId"] = f"{oid}-{len(o_items)}"
            it["additionalInfo"] = {
                **item_tpl["additionalInfo"],
                "categoriesIds": cat_ids,
                "categories": cats,
                "brandId": brand_id,
                "brandName": brand_name,
            }
            o_items.append(it)
        o.update(
            orderId=oid,
            sequence=oid[:13][-6:],
            creationDate=fmt7(created),
            lastChange=fmt7(created + timedelta(hours=1)),
            status=status,
            statusDescription=status,
            salesChannel=channel,
            value=value,
            items=o_items,
            totals=[
                {"id": "Items", "name": "Itens", "value": value},
                {"id": "Discounts", "name": "Descontos", "value": 0},
                {"id": "Shipping", "name": "Frete", "value": 0},
                {"id": "Tax", "name": "Taxa", "value": 0},
            ],
            marketingData=None
            if coupon is None
            else {**(order_tpl.get("marketingData") or {}), "coupon": coupon},
            authorizedDate=None,
            invoicedDate=None,
        )
        o["shippingData"] = copy.deepcopy(order_tpl["shippingData"])
        o["shippingData"]["logisticsInfo"] = [
            {**order_tpl["shippingData"]["logisticsInfo"][0], "itemIndex": i} for i in range(len(o_items))
        ]
        o["clientProfileData"] = {
            **order_tpl["clientProfileData"],
            "email": email,
            "document": doc,
            "userProfileId": upid,
        }
        orders.append(o)

    return {
        "sales_channels": template["sales_channels"],
        "category_tree": copy.deepcopy(CATEGORY_TREE),
        "brands": copy.deepcopy(BRANDS),
        "products": copy.deepcopy(PRODUCTS),
        "clients": clients,
        "orders": orders,
    }
