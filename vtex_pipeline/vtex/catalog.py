"""Catalog reads: category tree, brands, products, SKUs, sales channels."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

from vtex_pipeline.vtex.errors import VtexError, VtexNotFound
from vtex_pipeline.vtex.http import VtexClient, map_concurrent

log = logging.getLogger("vtex_pipeline.vtex")

BRAND_LIST_CAP = 20_000
BRAND_PAGE_SIZE = 1000


def get_category_tree(client: VtexClient, levels: int = 50) -> list[dict[str, Any]]:
    """The whole tree (departments at the root). Needs Catalog / Category despite the `pub` path."""
    data = client.get_json(
        f"/api/catalog_system/pub/category/tree/{int(levels)}", call="catalog.category_tree"
    )
    if not isinstance(data, list):
        raise VtexError(f"Catalog category tree returned {type(data).__name__}, not a list")
    return data


def list_brands(client: VtexClient) -> list[dict[str, Any]]:
    """All brands. brand/list stops at 20,000; at exactly the cap, page through brand/pagedlist."""
    data = client.get_json("/api/catalog_system/pvt/brand/list", call="catalog.brand_list")
    if not isinstance(data, list):
        raise VtexError(f"Catalog brand/list returned {type(data).__name__}, not a list")
    if len(data) < BRAND_LIST_CAP:
        return data
    log.info("brand/list returned the %d cap: paging brand/pagedlist instead", BRAND_LIST_CAP)
    out: list[dict[str, Any]] = []
    seen: set[Any] = set()
    page = 1
    pages: int | None = None
    while pages is None or page <= pages:
        body = client.get_json(
            "/api/catalog_system/pvt/brand/pagedlist",
            params={"pageSize": BRAND_PAGE_SIZE, "page": page},
            call="catalog.brand_pagedlist",
        )
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise VtexError("Catalog brand/pagedlist returned an unexpected body (no `items` array)")
        items = body["items"]
        paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
        if pages is None:
            if isinstance(paging.get("pages"), int):
                pages = paging["pages"]
            elif isinstance(paging.get("total"), int):
                pages = math.ceil(paging["total"] / BRAND_PAGE_SIZE)
        for b in items:
            key = b.get("id") if isinstance(b, dict) else None
            if key is not None and key in seen:
                continue
            seen.add(key)
            out.append(b)
        if not items:
            break
        if pages is None and len(items) < BRAND_PAGE_SIZE:
            break
        page += 1
    return out


def get_product(client: VtexClient, product_id: str | int) -> dict[str, Any] | None:
    """Product (PascalCase fields) or None when it does not exist."""
    try:
        data = client.get_json(f"/api/catalog/pvt/product/{int(product_id)}", call="catalog.product")
    except VtexNotFound:
        return None
    return data if isinstance(data, dict) else None


def get_sku(client: VtexClient, sku_id: str | int) -> dict[str, Any] | None:
    """SKU with its product/brand/category names, or None when it does not exist."""
    try:
        data = client.get_json(
            f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{int(sku_id)}", call="catalog.sku"
        )
    except VtexNotFound:
        return None
    return data if isinstance(data, dict) else None


def fetch_products(
    client: VtexClient, ids: Iterable[str | int]
) -> Iterator[tuple[str | int, dict[str, Any] | None, Exception | None]]:
    """(id, product | None, exc | None) as they complete; a missing product is (id, None, None)."""
    return map_concurrent(lambda i: get_product(client, i), ids, client.settings.concurrency)


def fetch_skus(
    client: VtexClient, ids: Iterable[str | int]
) -> Iterator[tuple[str | int, dict[str, Any] | None, Exception | None]]:
    """(id, sku | None, exc | None) as they complete; a missing SKU is (id, None, None)."""
    return map_concurrent(lambda i: get_sku(client, i), ids, client.settings.concurrency)


def list_sales_channels(client: VtexClient) -> list[dict[str, Any]]:
    """Sales channels (trade policies): `Id` matches an order's `salesChannel` as a string."""
    data = client.get_json("/api/catalog_system/pvt/saleschannel/list", call="catalog.sales_channels")
    if not isinstance(data, list):
        raise VtexError(f"Catalog saleschannel/list returned {type(data).__name__}, not a list")
    return data
