"""Catalog: category tree, brands, product, SKU (derived from order items when not in the fixture)."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.vtex_server.common import (
    BRAND_LIST_CAP,
    ApiWrap,
    api_routes,
    int_param,
    json_response,
    md_error,
)
from vtex_pipeline.simulators.vtex_server.state import SimState


def _trim_tree(nodes: list[dict[str, Any]], levels: int) -> list[dict[str, Any]]:
    out = []
    for n in nodes:
        c = dict(n)
        c["children"] = _trim_tree(n.get("children") or [], levels - 1) if levels > 1 else []
        out.append(c)
    return out


def _category_tree(state: SimState, req: Request) -> Response:
    try:
        levels = int(req.path_params["levels"])
    except ValueError:
        return md_error(400, "categoryLevels must be an integer")
    return json_response(_trim_tree(state.store.category_tree, max(levels, 1)))


def _brand_paged(state: SimState, req: Request) -> Response:
    size = int_param(req, "pageSize", 20, md_error)
    page = int_param(req, "page", 1, md_error)
    if size < 1 or page < 1:
        return md_error(400, "pageSize and page must be >= 1")
    brands = state.store.brands
    total = len(brands)
    return json_response(
        {
            "items": brands[(page - 1) * size : page * size],
            "paging": {"page": page, "perPage": size, "total": total, "pages": math.ceil(total / size)},
        }
    )


def _product(state: SimState, req: Request) -> Response:
    pid = int(req.path_params["productId"]) if req.path_params["productId"].isdigit() else -1
    p = state.store.products.get(pid)
    if p is None:
        return md_error(404, f"Product {req.path_params['productId']} not found")
    return json_response(p)


def _category_names(tree: list[dict[str, Any]]) -> dict[int, str]:
    out: dict[int, str] = {}
    stack = list(tree)
    while stack:
        n = stack.pop()
        out[int(n["id"])] = n["name"]
        stack.extend(n.get("children") or [])
    return out


def _derive_sku(state: SimState, sku_id: int) -> dict[str, Any] | None:
    item = state.sku_index.get(sku_id)
    if item is None:
        return None
    pid = int(item.get("productId") or 0)
    prod = state.store.products.get(pid)
    if prod is None:
        return None
    info = item.get("additionalInfo") or {}
    cat_ids = info.get("categoriesIds") or f"/{prod.get('CategoryId')}/"
    names = _category_names(state.store.category_tree)
    path = [int(c) for c in cat_ids.strip("/").split("/") if c.isdigit()]
    full_paths = ["/" + "/".join(str(c) for c in path[:k]) + "/" for k in range(len(path), 0, -1)]
    brand_id = str(info.get("brandId") or prod.get("BrandId") or "")
    brand_name = info.get("brandName") or next(
        (b["name"] for b in state.store.brands if str(b["id"]) == brand_id), ""
    )
    sku_name = item.get("name") or prod["Name"]
    dim = info.get("dimension") or {"cubicweight": 0.0, "height": 0, "length": 0, "weight": 0, "width": 0}
    return {
        "Id": sku_id,
        "ProductId": pid,
        "NameComplete": sku_name,
        "ComplementName": "",
        "ProductName": prod["Name"],
        "ProductDescription": prod.get("Description") or "",
        "ProductRefId": prod.get("RefId") or "",
        "TaxCode": "",
        "SkuName": sku_name,
        "IsActive": True,
        "IsTransported": True,
        "IsInventoried": True,
        "IsGiftCardRecharge": False,
        "ImageUrl": item.get("imageUrl") or "",
        "DetailUrl": item.get("detailUrl") or f"/{prod.get('LinkId')}/p",
        "CSCIdentification": None,
        "BrandId": brand_id,
        "BrandName": brand_name,
        "IsBrandActive": True,
        "Dimension": {k: dim.get(k, 0) for k in ("cubicweight", "height", "length", "weight", "width")},
        "RealDimension": {
            "realCubicWeight": 0.0,
            "realHeight": 0.0,
            "realLength": 0.0,
            "realWeight": 0.0,
            "realWidth": 0.0,
        },
        "ManufacturerCode": "",
        "IsKit": False,
        "KitItems": [],
        "Services": [],
        "Categories": [],
        "CategoriesFullPath": full_paths,
        "Attachments": [],
        "Collections": [],
        "SkuSellers": [
            {
                "SellerId": "1",
                "StockKeepingUnitId": sku_id,
                "SellerStockKeepingUnitId": str(sku_id),
                "IsActive": True,
                "FreightCommissionPercentage": 0,
                "ProductCommissionPercentage": 0,
            }
        ],
        "SalesChannels": [int(c["Id"]) for c in state.store.sales_channels],
        "Images": [],
        "Videos": [],
        "SkuSpecifications": [],
        "ProductSpecifications": [],
        "ProductClustersIds": info.get("productClusterId") or "",
        "PositionsInClusters": {},
        "ProductCategoryIds": cat_ids,
        "IsDirectCategoryActive": True,
        "ProductGlobalCategoryId": None,
        "ProductCategories": {str(c): names.get(c, "") for c in reversed(path)},
        "CommercialConditionId": int(info.get("commercialConditionId") or 1),
        "RewardValue": 0.0,
        "AlternateIds": {"Ean": item.get("ean") or "", "RefId": item.get("refId") or ""},
        "AlternateIdValues": [v for v in (item.get("ean"), item.get("refId")) if v],
        "EstimatedDateArrival": None,
        "MeasurementUnit": item.get("measurementUnit") or "un",
        "UnitMultiplier": float(item.get("unitMultiplier") or 1),
        "InformationSource": None,
        "ModalType": None,
        "KeyWords": prod.get("KeyWords"),
        "ReleaseDate": prod.get("ReleaseDate"),
        "ProductIsVisible": bool(prod.get("IsVisible", True)),
        "ShowIfNotAvailable": True,
        "IsProductActive": bool(prod.get("IsActive", True)),
        "ProductFinalScore": 0,
    }


def _sku(state: SimState, req: Request) -> Response:
    sid = int(req.path_params["skuId"]) if req.path_params["skuId"].isdigit() else -1
    sku = state.store.skus.get(sid) or _derive_sku(state, sid)
    if sku is None:
        return md_error(404, f"SKU {req.path_params['skuId']} not found")
    return json_response(sku)


def routes(state: SimState, api: ApiWrap) -> list[Route]:
    return api_routes(
        api,
        {
            "/api/catalog_system/pub/category/tree/{levels}": lambda r: _category_tree(state, r),
            "/api/catalog_system/pvt/brand/list": lambda r: json_response(
                state.store.brands[:BRAND_LIST_CAP]
            ),
            "/api/catalog_system/pvt/brand/pagedlist": lambda r: _brand_paged(state, r),
            "/api/catalog/pvt/product/{productId}": lambda r: _product(state, r),
            "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}": lambda r: _sku(state, r),
            "/api/catalog_system/pvt/saleschannel/list": lambda r: json_response(state.store.sales_channels),
        },
    )
