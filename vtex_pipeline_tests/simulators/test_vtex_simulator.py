"""The VTEX store simulator over real HTTP: paging limits, filters, auth, scroll, admin and faults."""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.generator import generate_store
from vtex_pipeline.simulators.server import ServerThread
from vtex_pipeline.simulators.store import fmt7, load_fixture, parse_ms
from vtex_pipeline.simulators.vtex_server import create_app

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY, TOKEN = "vtexappkey-sim-DEMO", "SIMTOKEN"
H = {"X-VTEX-API-AppKey": KEY, "X-VTEX-API-AppToken": TOKEN}
ORDERS = "/api/oms/pvt/orders"
SEARCH = "/api/dataentities/CL/search"
SCROLL = "/api/dataentities/CL/scroll"


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return generate_store(400, 1500, seed=11, now=NOW)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    servers: list[ServerThread] = []

    def _serve(fx: dict[str, Any], **kw: Any) -> str:
        kw.setdefault("now", lambda: NOW)
        s = ServerThread(create_app(load_fixture(copy.deepcopy(fx)), **kw)).start()
        servers.append(s)
        return s.url

    yield _serve
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def url(fixture: dict[str, Any]) -> Iterator[str]:
    """A shared read-only server over the generated store."""
    with ServerThread(create_app(load_fixture(copy.deepcopy(fixture)), now=lambda: NOW)) as s:
        yield s.url


def get(url: str, path: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(url + path, headers={**H, **(headers or {})}, params=params, timeout=30)


def order(
    oid: str, created: str, status: str = "invoiced", channel: str = "1", value: int = 1000
) -> dict[str, Any]:
    return {
        "orderId": oid,
        "sequence": oid.split("-")[0],
        "creationDate": created,
        "lastChange": created,
        "status": status,
        "statusDescription": status,
        "value": value,
        "salesChannel": channel,
        "origin": "Marketplace",
        "affiliateId": "",
        "marketingData": None,
        "totals": [{"id": "Items", "name": "Total dos Itens", "value": value}],
        "clientProfileData": {
            "firstName": "A",
            "lastName": "B",
            "email": "x@ct.vtex.com.br",
            "userProfileId": "u",
        },
        "items": [
            {
                "id": "1000",
                "productId": "1",
                "quantity": 2,
                "price": 500,
                "listPrice": 500,
                "sellingPrice": 500,
                "name": "SKU",
                "refId": "R",
            }
        ],
        "storePreferencesData": {"currencyCode": "BRL"},
    }


# ------------------------------------------------------------------ generator


def test_generator_counts_and_determinism() -> None:
    burst_at = NOW - timedelta(days=3)
    a = generate_store(300, 900, seed=5, now=NOW, bursts=[(burst_at, 50)])
    b = generate_store(300, 900, seed=5, now=NOW, bursts=[(burst_at, 50)])
    c = generate_store(300, 900, seed=6, now=NOW)
    assert len(a["clients"]) == 300 and len(a["orders"]) == 950 and len(c["orders"]) == 900
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.dumps(a["orders"][:5]) != json.dumps(c["orders"][:5])
    lo, hi = parse_ms(burst_at.isoformat()), parse_ms((burst_at + timedelta(hours=4)).isoformat())
    assert sum(lo <= parse_ms(o["creationDate"]) < hi for o in a["orders"]) >= 50
    assert len({o["orderId"] for o in a["orders"]}) == 950


def test_generator_data_quirks(fixture: dict[str, Any]) -> None:
    clients, orders = fixture["clients"], fixture["orders"]
    by_user = {c["userId"]: c for c in clients}
    by_doc = {c["document"]: c for c in clients}
    assert not set(by_user) & {c["id"] for c in clients}  # userId is not the document id
    guests = 0
    for o in orders:
        cp = o["clientProfileData"]
        if cp["userProfileId"] in by_user:
            assert by_user[cp["userProfileId"]]["document"] == cp["document"]
            buyer = by_user[cp["userProfileId"]]
        else:
            guests += 1
            buyer = by_doc[cp["document"]]
        assert parse_ms(buyer["createdIn"]) < parse_ms(o["creationDate"])
        totals = {t["id"]: t["value"] for t in o["totals"]}
        assert set(totals) == {"Items", "Discounts", "Shipping", "Tax"} and totals["Discounts"] <= 0
        assert o["value"] == sum(totals.values())
        assert totals["Items"] == sum(i["price"] * i["quantity"] for i in o["items"])
        assert all(
            isinstance(i["price"], int) and i["additionalInfo"]["categoriesIds"].startswith("/")
            for i in o["items"]
        )
        assert o["status"] and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00", o["creationDate"]
        )
    assert 0 < guests < len(orders) * 0.1
    emails = [o["clientProfileData"]["email"] for o in orders]
    hard = sum(bool(re.fullmatch(r"[0-9a-f]{32}@ct\.vtex\.com\.br", e)) for e in emails)
    soft = sum(bool(re.fullmatch(r".+@.+-[0-9a-f]+\.ct\.vtex\.com\.br", e)) for e in emails)
    assert hard > len(orders) * 0.6 and soft > 0 and hard + soft < len(orders)
    assert len({o["salesChannel"] for o in orders}) >= 2
    assert Counter(o["salesChannel"] for o in orders).most_common(1)[0][0] == "1"
    assert 0.25 < sum(c["updatedIn"] is None for c in clients) / len(clients) < 0.55
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", c["createdIn"]) for c in clients)
    old = [o for o in orders if parse_ms(o["creationDate"]) < parse_ms(NOW.isoformat()) - 730 * 86400_000]
    assert old
    assert 0.2 < sum(o["marketingData"] is None for o in orders) / len(orders) < 0.4
    coupons = {
        o["marketingData"]["coupon"] for o in orders if o["marketingData"] and o["marketingData"]["coupon"]
    }
    assert any(c != c.strip() for c in coupons) and any(c.isupper() for c in coupons)
    assert Counter(o["status"] for o in orders)["canceled"] > 0
    product_ids = {p["Id"] for p in fixture["products"]}
    assert any(int(i["productId"]) not in product_ids for o in orders for i in o["items"])
    counts = Counter(o["clientProfileData"]["document"] for o in orders)
    assert Counter(counts.values())[1] == max(Counter(counts.values()).values())  # most buyers buy once
    assert max(counts.values()) >= 5


def test_generator_is_fast() -> None:
    t = time.perf_counter()
    fx = generate_store(20_000, 60_000, seed=1, now=NOW)
    assert time.perf_counter() - t < 20  # ~4 s on an idle 2-core box
    assert len(fx["clients"]) == 20_000 and len(fx["orders"]) == 60_000


# ------------------------------------------------------------------ OMS list / detail


def test_list_paging_defaults_and_caps(url: str) -> None:
    r = get(url, ORDERS)
    body = r.json()
    assert r.status_code == 200 and len(body["list"]) == 15
    assert body["paging"]["perPage"] == 15 and body["paging"]["currentPage"] == 1
    total = body["paging"]["total"]
    assert body["paging"]["pages"] == -(-total // 15)
    assert body["facets"] == [] and body["stats"]["stats"]["totalValue"]["Count"] == total
    item = body["list"][0]
    assert item["items"] is None and isinstance(item["totalValue"], int) and "lastChange" not in item
    assert get(url, ORDERS, per_page=100).status_code == 200
    assert get(url, ORDERS, per_page=101).status_code == 400
    assert get(url, ORDERS, page=30, per_page=10).status_code == 200
    r = get(url, ORDERS, page=31, per_page=10)
    assert r.status_code == 400 and "30" in r.json()["error"]["message"]
    dates = [o["creationDate"] for o in get(url, ORDERS, per_page=50).json()["list"]]
    assert dates == sorted(dates, reverse=True)
    dates = [
        o["creationDate"] for o in get(url, ORDERS, per_page=50, orderBy="creationDate,asc").json()["list"]
    ]
    assert dates == sorted(dates)


def test_list_filters_status_and_channel(url: str, fixture: dict[str, Any]) -> None:
    horizon = parse_ms(NOW.isoformat()) - 730 * 86400_000
    visible = [o for o in fixture["orders"] if parse_ms(o["creationDate"]) >= horizon]
    r = get(url, ORDERS, f_status="canceled,handling", per_page=100).json()
    assert r["paging"]["total"] == sum(o["status"] in ("canceled", "handling") for o in visible)
    assert {o["status"] for o in r["list"]} <= {"canceled", "handling"}
    r = get(url, ORDERS, salesChannelId="2", per_page=100).json()
    assert r["paging"]["total"] == sum(o["salesChannel"] == "2" for o in visible)
    assert get(url, ORDERS).json()["paging"]["total"] == len(visible)


def test_creation_date_range_inclusive_at_ms(serve: Callable[..., str]) -> None:
    fx = {
        "orders": [
            order("1-01", "2026-01-01T00:00:00.0000000+00:00"),  # exactly A
            order("2-01", "2026-01-01T23:59:59.9999999+00:00"),  # B.999 (truncated to ms)
            order("3-01", "2026-01-02T00:00:00.0000000+00:00"),  # B + 1 ms
            order("4-01", "2025-12-31T23:59:59.9990000+00:00"),  # A - 1 ms
            order("5-01", "2026-01-01T02:00:00.000+02:00"),  # = A, written with an offset
        ]
    }
    url = serve(fx)
    r = get(url, ORDERS, f_creationDate="creationDate:[2026-01-01T00:00:00.000Z TO 2026-01-01T23:59:59.999Z]")
    assert sorted(o["orderId"] for o in r.json()["list"]) == ["1-01", "2-01", "5-01"]
    assert get(url, ORDERS, f_creationDate="creationDate:[2026-01-01 TO]").status_code == 400


def test_two_year_horizon_and_index_lag(serve: Callable[..., str]) -> None:
    fx = {
        "orders": [
            order("old-01", fmt7(NOW - timedelta(days=731))),
            order("edge-01", fmt7(NOW - timedelta(days=729))),
            order("fresh-01", fmt7(NOW - timedelta(seconds=60))),
        ]
    }
    url = serve(fx, index_lag_seconds=240)
    ids = {o["orderId"] for o in get(url, ORDERS).json()["list"]}
    assert ids == {"edge-01"}
    assert get(url, ORDERS + "/old-01").status_code == 404
    assert get(url, ORDERS + "/fresh-01").status_code == 200  # detail is not lagged
    r = get(url, ORDERS + "/nope-01")
    assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
    stats = requests.get(url + "/_sim/stats", timeout=10).json()
    assert stats["orders"] == 3 and stats["orders_listable"] == 2 and stats["items"] == 2


def test_burst_window_exceeds_the_cap(serve: Callable[..., str]) -> None:
    start = datetime(2026, 2, 10, 8, tzinfo=UTC)
    fx = generate_store(50, 10, seed=2, now=NOW, bursts=[(start, 3050)])
    url = serve(fx)
    window = "creationDate:[2026-02-10T08:00:00.000Z TO 2026-02-10T11:59:59.999Z]"
    r = get(url, ORDERS, f_creationDate=window, per_page=100, orderBy="creationDate,asc").json()
    assert r["paging"]["total"] >= 3050 and r["paging"]["pages"] == 31
    assert get(url, ORDERS, f_creationDate=window, per_page=100, page=31).status_code == 400


def test_order_detail_shape(url: str, fixture: dict[str, Any]) -> None:
    oid = get(url, ORDERS).json()["list"][0]["orderId"]
    body = get(url, ORDERS + "/" + oid).json()
    assert body == next(o for o in fixture["orders"] if o["orderId"] == oid)


# ------------------------------------------------------------------ Master Data search


def test_search_range_headers_and_caps(url: str, fixture: dict[str, Any]) -> None:
    n = len(fixture["clients"])
    r = get(url, SEARCH, {"REST-Range": "resources=10-60"}, _fields="id,email", _sort="createdIn ASC")
    assert r.status_code == 200 and len(r.json()) == 50
    assert r.headers["REST-Content-Range"] == f"resources 10-60/{n}"
    assert set(r.json()[0]) == {"id", "email"}
    r = get(url, SEARCH)  # no REST-Range -> 15, no _fields -> system fields only
    assert len(r.json()) == 15 and r.headers["REST-Content-Range"] == f"resources 0-15/{n}"
    assert set(r.json()[0]) == {"id", "accountId", "accountName", "dataEntityId"}
    assert "email" in get(url, SEARCH, _fields="_all").json()[0]
    r = get(url, SEARCH, {"REST-Range": "resources=0-101"})
    assert r.status_code == 400 and "100" in r.json()["Message"]
    for rng in ("resources=10000-10010", "resources=9950-10001"):
        r = get(url, SEARCH, {"REST-Range": rng})
        assert r.status_code == 400 and "10000" in r.json()["Message"]
    r = get(url, SEARCH, {"REST-Range": f"resources={n - 5}-{n + 20}"}, _fields="id")
    assert len(r.json()) == 5 and r.headers["REST-Content-Range"] == f"resources {n - 5}-{n}/{n}"


def test_search_where_sort_and_filters(url: str, fixture: dict[str, Any]) -> None:
    clients = fixture["clients"]
    rr = {"REST-Range": "resources=0-100"}
    lo, hi = "2025-01-01T00:00:00Z", "2025-06-30T23:59:59.999Z"

    def in_window(v: str | None) -> bool:
        return v is not None and parse_ms(lo) <= parse_ms(v) <= parse_ms(hi)

    expected = {c["id"] for c in clients if in_window(c["updatedIn"]) or in_window(c["createdIn"])}
    where = f"(updatedIn between {lo} AND {hi}) OR (createdIn between '{lo}' AND \"{hi}\")"
    got: set[str] = set()
    for x in range(0, 1000, 100):
        r = get(
            url,
            SEARCH,
            {"REST-Range": f"resources={x}-{x + 100}"},
            _fields="id,createdIn",
            _where=where,
            _sort="createdIn ASC",
        )
        page = r.json()
        assert int(r.headers["REST-Content-Range"].split("/")[1]) == len(expected)
        assert [d["createdIn"] for d in page] == sorted(d["createdIn"] for d in page)
        got |= {d["id"] for d in page}
        if len(page) < 100:
            break
    assert got == expected
    nulls = get(url, SEARCH, rr, _fields="id,updatedIn", _where="updatedIn is null")
    assert int(nulls.headers["REST-Content-Range"].split("/")[1]) == sum(
        c["updatedIn"] is None for c in clients
    )
    assert all(d["updatedIn"] is None for d in nulls.json())
    c = clients[7]
    r = get(url, SEARCH, _fields="id,email", userId=c["userId"])
    assert r.json() == [{"id": c["id"], "email": c["email"]}]
    r = get(url, SEARCH, _fields="id", _where=f"email={c['email']} AND firstName<>nobody")
    assert r.json() == [{"id": c["id"]}]
    r = get(url, SEARCH, _where="isNewsletterOptIn=true")
    assert r.status_code == 400 and "filterable" in r.json()["Message"]
    assert get(url, SEARCH, phone="123").status_code == 400
    assert get(url, SEARCH, _where="(email = ").status_code == 400
    desc = get(url, SEARCH, rr, _fields="id,createdIn", _sort="createdIn DESC").json()
    assert [d["createdIn"] for d in desc] == sorted((d["createdIn"] for d in desc), reverse=True)
    a = [d["id"] for d in get(url, SEARCH, rr, _fields="id").json()]
    b = [d["id"] for d in get(url, SEARCH, rr, _fields="id").json()]
    assert a != b  # unsorted paging is unstable, as on VTEX


# ------------------------------------------------------------------ Master Data scroll


def test_scroll_reads_everything_and_freezes_query(
    serve: Callable[..., str], fixture: dict[str, Any]
) -> None:
    url = serve(fixture)
    n = len(fixture["clients"])
    r = get(url, SCROLL, _size=150, _fields="id,email", _sort="createdIn ASC")
    token, ids = r.headers["X-VTEX-MD-TOKEN"], [d["id"] for d in r.json()]
    assert r.headers["REST-Content-Total"] == str(n) and len(ids) == 150
    new = dict(fixture["clients"][0], id="new-client", userId="new-user", email="new@x.com")
    requests.post(url + "/_sim/clients", json=new, timeout=10).raise_for_status()
    while True:
        r = get(url, SCROLL, _token=token)
        assert r.status_code == 200
        if not r.json():
            break
        ids += [d["id"] for d in r.json()]
    assert len(ids) == len(set(ids)) == n and "new-client" not in ids
    r = get(url, SCROLL, _token=token)  # dropped after the empty page
    assert r.status_code == 400
    assert get(url, SCROLL, _size=1001).status_code == 400


def test_scroll_expiry_and_ten_token_limit(serve: Callable[..., str], fixture: dict[str, Any]) -> None:
    url = serve(fixture, scroll_idle_seconds=0.5)
    tokens = [get(url, SCROLL, _size=10).headers["X-VTEX-MD-TOKEN"] for _ in range(10)]
    r = get(url, SCROLL, _size=10)
    assert r.status_code == 400 and r.json() == {"Message": "Maximum simultaneous scrolls rate exceeded (10)"}
    assert get(url, SCROLL, _token=tokens[0]).status_code == 200  # using a token resets its timer
    time.sleep(0.7)
    r = get(url, SCROLL, _token=tokens[0])
    assert r.status_code == 400 and "expire" in r.json()["Message"]
    assert get(url, SCROLL, _size=10).status_code == 200  # expired tokens free their slots


# ------------------------------------------------------------------ auth


def test_auth_401_and_403_names_permission(serve: Callable[..., str], fixture: dict[str, Any]) -> None:
    keys = {
        "k-full": {"token": "t1", "permissions": ["*"]},
        "k-list": {"token": "t2", "permissions": ["oms.list_orders"]},
    }
    url = serve(fixture, app_keys=keys)
    assert requests.get(url + ORDERS, timeout=10).status_code == 401
    bad = {"X-VTEX-API-AppKey": "k-full", "X-VTEX-API-AppToken": "wrong"}
    assert requests.get(url + ORDERS, headers=bad, timeout=10).status_code == 401
    unknown = {"X-VTEX-API-AppKey": "nope", "X-VTEX-API-AppToken": "t1"}
    assert requests.get(url + SEARCH, headers=unknown, timeout=10).status_code == 401
    lim = {"X-VTEX-API-AppKey": "k-list", "X-VTEX-API-AppToken": "t2"}
    assert requests.get(url + ORDERS, headers=lim, timeout=10).status_code == 200
    oid = fixture["orders"][-1]["orderId"]
    r = requests.get(f"{url}{ORDERS}/{oid}", headers=lim, timeout=10)
    assert r.status_code == 403 and "OMS / View Order" in r.json()["Message"]
    r = requests.get(url + SEARCH, headers=lim, timeout=10)
    assert r.status_code == 403 and "Dynamic Storage / Read only documents" in r.json()["Message"]
    r = requests.get(url + "/api/catalog_system/pvt/saleschannel/list", headers=lim, timeout=10)
    assert r.status_code == 403 and "Catalog / Sales Channel" in r.json()["error"]["message"]
    full = {"X-VTEX-API-AppKey": "k-full", "X-VTEX-API-AppToken": "t1"}
    assert requests.get(f"{url}{ORDERS}/{oid}", headers=full, timeout=10).status_code == 200


# ------------------------------------------------------------------ catalog


def test_catalog_routes(url: str, fixture: dict[str, Any], serve: Callable[..., str]) -> None:
    tree1 = get(url, "/api/catalog_system/pub/category/tree/1").json()
    assert tree1 and all(n["children"] == [] and n["hasChildren"] for n in tree1)
    tree3 = get(url, "/api/catalog_system/pub/category/tree/3").json()
    assert tree3[0]["children"][0]["children"]
    brands = get(url, "/api/catalog_system/pvt/brand/list").json()
    assert len(brands) == 30
    paged = get(url, "/api/catalog_system/pvt/brand/pagedlist", pageSize=7, page=5).json()
    assert paged["paging"] == {"page": 5, "perPage": 7, "total": 30, "pages": 5} and len(paged["items"]) == 2
    known = {p["Id"] for p in fixture["products"]}
    assert get(url, "/api/catalog/pvt/product/1").json()["Id"] == 1
    ghost = next(
        int(i["productId"]) for o in fixture["orders"] for i in o["items"] if int(i["productId"]) not in known
    )
    assert get(url, f"/api/catalog/pvt/product/{ghost}").status_code == 404
    item = next(i for o in fixture["orders"] for i in o["items"] if int(i["productId"]) in known)
    sku = get(url, f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{item['id']}").json()
    assert sku["Id"] == int(item["id"]) and sku["ProductId"] == int(item["productId"])
    assert sku["BrandId"] == item["additionalInfo"]["brandId"]
    assert sku["ProductCategoryIds"] == item["additionalInfo"]["categoriesIds"]
    assert get(url, "/api/catalog_system/pvt/sku/stockkeepingunitbyid/99999999").status_code == 404
    channels = get(url, "/api/catalog_system/pvt/saleschannel/list").json()
    assert [c["Id"] for c in channels] == [1, 2, 3]
    url2 = serve({"skus": [{"Id": 42, "ProductId": 1, "SkuName": "from fixture"}]})
    assert (
        get(url2, "/api/catalog_system/pvt/sku/stockkeepingunitbyid/42").json()["SkuName"] == "from fixture"
    )


# ------------------------------------------------------------------ admin


def test_admin_mutations_are_reflected(serve: Callable[..., str], fixture: dict[str, Any]) -> None:
    url = serve(fixture)
    created = fmt7(NOW - timedelta(hours=1))
    requests.post(
        url + "/_sim/orders", json=[order("999-01", created, status="handling")], timeout=10
    ).raise_for_status()
    r = get(url, ORDERS, f_creationDate=f"creationDate:[{created[:23]}Z TO {created[:23]}Z]").json()
    assert [o["orderId"] for o in r["list"]] == ["999-01"] and r["list"][0]["totalItems"] == 2
    r = requests.post(url + "/_sim/orders/999-01/status", json={"status": "canceled"}, timeout=10)
    assert r.status_code == 200
    detail = get(url, ORDERS + "/999-01").json()
    assert detail["status"] == "canceled" and detail["lastChange"] == fmt7(NOW)
    assert (
        get(url, ORDERS, f_status="canceled", per_page=100, orderBy="creationDate,desc").json()["list"][0][
            "orderId"
        ]
        == "999-01"
    )
    c = dict(fixture["clients"][3], email="changed@x.com", updatedIn=None)
    requests.post(url + "/_sim/clients", json=c, timeout=10).raise_for_status()
    doc = get(url, SEARCH, _fields="email,updatedIn", id=c["id"]).json()[0]
    assert doc == {"email": "changed@x.com", "updatedIn": fmt7(NOW, z=True)}
    stats = requests.get(url + "/_sim/stats", timeout=10).json()
    assert stats["customers"] == len(fixture["clients"]) and stats["orders"] == len(fixture["orders"]) + 1
    assert stats["requests"][ORDERS] == 2 and stats["requests"]["/api/oms/pvt/orders/{orderId}"] == 1
    assert stats["responses"]["200"] == 4
    requests.post(url + "/_sim/reset-stats", timeout=10).raise_for_status()
    assert requests.get(url + "/_sim/stats", timeout=10).json()["requests"] == {}
    fx = requests.get(url + "/_sim/fixture", timeout=30).json()
    assert (
        len(fx["orders"]) == len(fixture["orders"]) + 1
        and load_fixture(fx).orders["999-01"]["status"] == "canceled"
    )


# ------------------------------------------------------------------ faults


def test_storm429_and_admin_unaffected(serve: Callable[..., str], fixture: dict[str, Any]) -> None:
    url = serve(fixture, faults=FaultSpec.parse("storm429=5,retry_after=2"))
    codes = []
    for _ in range(8):
        r = get(url, ORDERS, per_page=1)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["Retry-After"] == "2"
        assert requests.get(url + "/_sim/stats", timeout=10).status_code == 200
    assert codes == [429] * 5 + [200] * 3
    requests.post(url + "/_sim/faults", json={"spec": "rate503=1"}, timeout=10).raise_for_status()
    assert get(url, ORDERS).status_code == 503
    requests.post(url + "/_sim/faults", json={"spec": "malformed=1"}, timeout=10).raise_for_status()
    r = get(url, ORDERS)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)
    requests.post(
        url + "/_sim/faults", json={"spec": "rate429=1,retry_after=0"}, timeout=10
    ).raise_for_status()
    r = get(url, ORDERS)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert requests.post(url + "/_sim/faults", json={"spec": "bogus=1"}, timeout=10).status_code == 400


def test_keys_revoked_or_narrowed_at_run_time(serve: Callable[..., str], fixture: dict[str, Any]) -> None:
    url = serve(fixture)
    assert get(url, ORDERS, per_page=1).status_code == 200
    keys = url + "/_sim/keys"
    requests.post(keys, json={"app_key": KEY, "token": TOKEN, "permissions": ["oms.list_orders"]}, timeout=10)
    assert get(url, ORDERS, per_page=1).status_code == 200
    oid = fixture["orders"][-1]["orderId"]
    r = get(url, f"{ORDERS}/{oid}")
    assert r.status_code == 403 and "View Order" in r.json()["Message"]
    requests.post(keys, json={"app_key": KEY, "revoke": True}, timeout=10).raise_for_status()
    assert get(url, ORDERS, per_page=1).status_code == 401
    requests.post(keys, json={"app_key": KEY, "token": TOKEN}, timeout=10).raise_for_status()
    assert get(url, f"{ORDERS}/{oid}").status_code == 200
    assert requests.post(keys, json={"app_key": KEY}, timeout=10).status_code == 400


def test_latency_is_concurrent_and_rate_limit(serve: Callable[..., str], fixture: dict[str, Any]) -> None:
    url = serve(fixture, faults=FaultSpec.parse("latency=0.4"))
    t = time.perf_counter()
    with ThreadPoolExecutor(6) as ex:
        codes = list(
            ex.map(lambda _: get(url, "/api/catalog_system/pvt/saleschannel/list").status_code, range(6))
        )
    assert codes == [200] * 6 and time.perf_counter() - t < 1.5
    requests.post(url + "/_sim/faults", json={"spec": "limit_rps=5"}, timeout=10).raise_for_status()
    codes = [get(url, "/api/catalog_system/pvt/saleschannel/list").status_code for _ in range(9)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]


def test_fault_spec_parse_and_determinism() -> None:
    spec = FaultSpec.parse("rate429=0.3,rate503=0.1,seed=7")
    assert spec.rate429 == 0.3 and spec.seed == 7 and spec.retry_after == 1
    s1, s2 = FaultSpec.parse("rate429=0.3,seed=7"), FaultSpec.parse("rate429=0.3,seed=7")
    assert [s1.decide().status for _ in range(50)] == [s2.decide().status for _ in range(50)]
    with pytest.raises(ValueError):
        FaultSpec.parse("nope=1")
    assert FaultSpec.parse("").to_spec() == ""
