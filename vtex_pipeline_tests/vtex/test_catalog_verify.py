"""Catalog reads (brand cap, 404 -> None, concurrency) and the verify probes against a role-aware stub."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vtex_pipeline.vtex import permissions as P
from vtex_pipeline.vtex.catalog import (
    fetch_products,
    fetch_skus,
    get_category_tree,
    get_product,
    get_sku,
    list_brands,
    list_sales_channels,
)
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.verify import verify_vtex
from vtex_pipeline_tests.vtex.clients import fast_client

KEY, TOKEN = "vtexappkey-store-ABC", "token-XYZ-123456"


class StoreStub:
    """Every route the client reads; 401 for a wrong key, 403 when the key's permissions lack the route."""

    def __init__(self, granted: set[str], *, brands: int = 3, orders: bool = True) -> None:
        self.granted = granted
        self.brands = [{"id": i, "name": f"B{i}", "isActive": True} for i in range(1, brands + 1)]
        self.orders = orders
        self.paths: list[str] = []

        async def handler(request: Request) -> JSONResponse:
            path = request.url.path
            self.paths.append(path + ("?" + request.url.query if request.url.query else ""))
            if (
                request.headers.get("x-vtex-api-appkey") != KEY
                or request.headers.get("x-vtex-api-apptoken") != TOKEN
            ):
                return JSONResponse({"Message": "unauthorized"}, status_code=401)
            perm = P.permission_for(request.method, path)
            if perm is None:
                return JSONResponse({"Message": "no route"}, status_code=404)
            if perm.key not in self.granted:
                return JSONResponse({"Message": "forbidden"}, status_code=403)
            return self.answer(perm, path, request)

        self.app = Starlette(routes=[Route("/{p:path}", handler)])

    def answer(self, perm: P.Permission, path: str, request: Request) -> JSONResponse:
        q = request.query_params
        if perm is P.LIST_ORDERS:
            lst = [{"orderId": "v1-01", "creationDate": "2025-01-01T00:00:00+00:00"}] if self.orders else []
            return JSONResponse({"list": lst, "paging": {"total": len(lst)}})
        if perm is P.VIEW_ORDER:
            if path.endswith("/v1-01"):
                return JSONResponse({"orderId": "v1-01", "items": [{"id": "55", "productId": "44"}]})
            return JSONResponse({"error": {"message": "Order not found"}}, status_code=404)
        if perm is P.READ_DOCUMENTS:
            return JSONResponse([{"id": "x"}], headers={"REST-Content-Range": "resources 0-1/1"})
        if perm is P.CATEGORY:
            return JSONResponse([{"id": 1, "name": "D", "children": []}])
        if perm is P.BRANDS:
            if path.endswith("/list"):
                return JSONResponse(self.brands[:20_000])
            size, page = int(q["pageSize"]), int(q["page"])
            chunk = self.brands[(page - 1) * size : page * size]
            pages = -(-len(self.brands) // size)
            return JSONResponse(
                {
                    "items": chunk,
                    "paging": {"page": page, "perPage": size, "total": len(self.brands), "pages": pages},
                }
            )
        if perm is P.PRODUCT:
            pid = int(path.rsplit("/", 1)[1])
            if pid == 44 or pid < 10:
                return JSONResponse({"Id": pid, "Name": f"P{pid}"})
            return JSONResponse({"Message": "Product not found"}, status_code=404)
        if perm is P.SKU:
            sid = int(path.rsplit("/", 1)[1])
            if sid == 55 or sid < 10:
                return JSONResponse({"Id": sid, "ProductId": 44})
            return JSONResponse({"Message": "SKU not found"}, status_code=404)
        return JSONResponse([{"Id": 1, "Name": "Main store"}, {"Id": 2, "Name": "Outlet"}])


def _client(url: str, **kw: Any) -> VtexClient:
    return fast_client(url, **{"account": "store", "app_key": KEY, "app_token": TOKEN, **kw})


ALL = {p.key for p in P.ALL_PERMISSIONS}


def test_catalog_reads(serve) -> None:
    stub = StoreStub(ALL)
    client = _client(serve(stub.app))
    assert get_category_tree(client)[0]["id"] == 1
    assert stub.paths[-1] == "/api/catalog_system/pub/category/tree/50"
    assert [b["id"] for b in list_brands(client)] == [1, 2, 3]
    assert get_product(client, 44)["Name"] == "P44"
    assert get_product(client, "999") is None
    assert get_sku(client, "55")["ProductId"] == 44 and get_sku(client, 999) is None
    products = {pid: (p, exc) for pid, p, exc in fetch_products(client, [1, 2, 999, "44"])}
    assert products[1][0]["Id"] == 1 and products[999] == (None, None) and products["44"][0]["Id"] == 44
    skus = {sid: (s, exc) for sid, s, exc in fetch_skus(client, [1, 999])}
    assert skus[999] == (None, None) and skus[1][0]["Id"] == 1
    assert [c["Name"] for c in list_sales_channels(client)] == ["Main store", "Outlet"]


def test_list_brands_pages_past_the_20k_cap(serve) -> None:
    stub = StoreStub(ALL, brands=20_500)
    client = _client(serve(stub.app))
    brands = list_brands(client)
    assert len(brands) == 20_500 and len({b["id"] for b in brands}) == 20_500
    paged = [p for p in stub.paths if "pagedlist" in p]
    assert len(paged) == 21 and all("pageSize=1000" in p for p in paged)


def test_verify_all_granted(serve) -> None:
    stub = StoreStub(ALL)
    report = verify_vtex(_client(serve(stub.app)))
    assert report.ok and report.auth_error is None
    assert [c.permission for c in report.checks] == list(P.ALL_PERMISSIONS)
    assert report.sales_channels == [("1", "Main store"), ("2", "Outlet")]
    # probes used the first order's product and SKU ids
    assert "/api/catalog/pvt/product/44" in stub.paths
    assert "/api/catalog_system/pvt/sku/stockkeepingunitbyid/55" in stub.paths
    assert report.base_url.startswith("http://127.0.0.1:") and report.account == "store"


def test_verify_missing_permissions_and_no_orders(serve) -> None:
    stub = StoreStub(ALL - {P.SKU.key, P.READ_DOCUMENTS.key}, orders=False)
    report = verify_vtex(_client(serve(stub.app)))
    assert not report.ok
    assert {p.key for p in report.missing} == {P.SKU.key, P.READ_DOCUMENTS.key}
    by_key = {c.permission.key: c for c in report.checks}
    assert by_key[P.SKU.key].status == 403 and "Catalog / SKU" in by_key[P.SKU.key].detail
    assert "ICOMMKT_Integration" in by_key[P.SKU.key].grant
    assert by_key[P.VIEW_ORDER.key].ok and by_key[P.VIEW_ORDER.key].status == 404  # made-up id
    assert by_key[P.PRODUCT.key].ok


def test_verify_bad_key_stops(serve) -> None:
    stub = StoreStub(ALL)
    report = verify_vtex(_client(serve(stub.app), app_token="wrong-token"))
    assert not report.ok and report.checks == []
    assert report.auth_error and "401" in report.auth_error and "wrong-token" not in report.auth_error
    assert len(stub.paths) == 1
