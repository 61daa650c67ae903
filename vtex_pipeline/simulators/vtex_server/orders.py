"""OMS: List orders (30-page cap, 2-year horizon, index lag, inclusive ms ranges) and Get order."""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.store import parse_ms
from vtex_pipeline.simulators.vtex_server.common import (
    MAX_PAGES,
    MAX_PER_PAGE,
    ApiError,
    ApiWrap,
    api_routes,
    dumps,
    int_param,
    json_response,
    oms_error,
)
from vtex_pipeline.simulators.vtex_server.state import SimState


def _stat(values: list[int]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {
            "Count": 0,
            "Max": 0,
            "Mean": 0,
            "Min": 0,
            "Missing": 0,
            "StdDev": 0,
            "Sum": 0,
            "SumOfSquares": 0,
            "Facets": None,
        }
    s = sum(values)
    sq = sum(v * v for v in values)
    mean = s / n
    var = max(sq / n - mean * mean, 0.0)
    std = math.sqrt(var * n / (n - 1)) if n > 1 else 0.0
    return {
        "Count": n,
        "Max": max(values),
        "Mean": mean,
        "Min": min(values),
        "Missing": 0,
        "StdDev": std,
        "Sum": s,
        "SumOfSquares": sq,
        "Facets": None,
    }


def _stats(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fld in ("totalValue", "totalItems"):
        top = _stat([s[fld] for s in summaries])
        facets: dict[str, dict[str, Any]] = {
            "origin": {"Fulfillment": {}, "Marketplace": {}},
            "currencyCode": {},
        }
        for facet in ("origin", "currencyCode"):
            groups: dict[str, list[int]] = {}
            for s in summaries:
                groups.setdefault(s[facet], []).append(s[fld])
            for k, vals in groups.items():
                facets[facet][k] = _stat(vals)
        if not facets["currencyCode"]:
            facets["currencyCode"]["BRL"] = _stat([])
        for k in ("Fulfillment", "Marketplace"):
            if not facets["origin"][k]:
                facets["origin"][k] = _stat([])
        top["Facets"] = facets
        out[fld] = top
    return {"stats": out}


_RANGE = re.compile(r"^\s*(\w+)\s*:\s*\[\s*(\S+)\s+TO\s+(\S+)\s*\]\s*$", re.IGNORECASE)


def _parse_range(raw: str, name: str) -> tuple[int | None, int | None]:
    m = _RANGE.match(raw)
    if not m or m.group(1) != name:
        raise ApiError(oms_error(400, f"Invalid filter f_{name}: expected {name}:[A TO B]"))
    try:
        lo = None if m.group(2) == "*" else parse_ms(m.group(2))
        hi = None if m.group(3) == "*" else parse_ms(m.group(3))
    except ValueError as e:
        raise ApiError(oms_error(400, f"Invalid date in f_{name}: {e}")) from e
    return lo, hi


def _list_orders(state: SimState, req: Request) -> Response:
    q = req.query_params
    per_page = int_param(req, "per_page", 15, oms_error)
    page = int_param(req, "page", 1, oms_error)
    if per_page < 1 or per_page > MAX_PER_PAGE:
        return oms_error(400, f"per_page must be between 1 and {MAX_PER_PAGE}")
    if page < 1:
        return oms_error(400, "page must be >= 1")
    if page > MAX_PAGES:
        return oms_error(
            400,
            f"Max page exceeded: only {MAX_PAGES} pages can be requested "
            f"({MAX_PAGES * per_page} orders); narrow the filter (e.g. f_creationDate)",
        )
    lo, hi = state.listable_bounds()
    if q.get("f_creationDate"):
        a, b = _parse_range(q["f_creationDate"], "creationDate")
        if a is not None:
            lo = max(lo, a)
        if b is not None:
            hi = min(hi, b)
    statuses = tuple(s.strip() for s in (q.get("f_status") or "").split(",") if s.strip())
    channels = tuple(s.strip() for s in (q.get("salesChannelId") or "").split(",") if s.strip())
    order_by = (q.get("orderBy") or "creationDate,desc").split(",")
    field_, direction = order_by[0], (order_by[1] if len(order_by) > 1 else "desc").lower()
    if field_ not in ("creationDate", "orderId", "totalValue", "items", "origin") or direction not in (
        "asc",
        "desc",
    ):
        return oms_error(400, f"Invalid orderBy {q.get('orderBy')!r}")
    other_ranges: list[tuple[str, int | None, int | None]] = []
    for name in ("authorizedDate", "invoicedDate"):
        if q.get(f"f_{name}"):
            a, b = _parse_range(q[f"f_{name}"], name)
            other_ranges.append((name, a, b))

    key = (state.version, lo, hi, statuses, channels, tuple(other_ranges), field_, direction)
    with state.lock:
        cached = state._stats_cache.get(key)
        if cached is None:
            i = bisect.bisect_left(state.order_keys, lo)
            j = bisect.bisect_right(state.order_keys, hi)
            ids = state.order_ids[i:j] if lo <= hi else []
            sums = [state.summaries[o] for o in ids]
            if statuses:
                sums = [s for s in sums if s["status"] in statuses]
            if channels:
                sums = [s for s in sums if s["salesChannel"] in channels]
            for name, a, b in other_ranges:
                keep = []
                for s in sums:
                    v = state.store.orders[s["orderId"]].get(name)
                    if v is None:
                        continue
                    ms = parse_ms(v)
                    if (a is None or ms >= a) and (b is None or ms <= b):
                        keep.append(s)
                sums = keep
            if field_ == "creationDate":
                if direction == "desc":
                    sums.reverse()
            else:
                kf: Callable[[dict[str, Any]], Any] = {
                    "orderId": lambda s: s["orderId"],
                    "totalValue": lambda s: s["totalValue"],
                    "items": lambda s: s["totalItems"],
                    "origin": lambda s: s["origin"],
                }[field_]
                sums.sort(key=kf, reverse=direction == "desc")
            cached = (sums, _stats(sums))
            if len(state._stats_cache) > 256:
                state._stats_cache.clear()
            state._stats_cache[key] = cached
    sums, stats = cached
    total = len(sums)
    start = (page - 1) * per_page
    body = {
        "list": sums[start : start + per_page],
        "facets": [],
        "paging": {
            "total": total,
            "pages": math.ceil(total / per_page),
            "currentPage": page,
            "perPage": per_page,
        },
        "stats": stats,
    }
    return json_response(body)


def _get_order(state: SimState, req: Request) -> Response:
    oid = req.path_params["orderId"]
    with state.lock:
        if not state.detail_visible(oid):
            return oms_error(404, f"Order {oid} not found", code="OMS003")
        body = state._detail_cache.get(oid)
        if body is None:
            body = dumps(state.store.orders[oid])
            state._detail_cache[oid] = body
    return json_response(None, body=body)


def routes(state: SimState, api: ApiWrap) -> list[Route]:
    return api_routes(
        api,
        {
            "/api/oms/pvt/orders": lambda r: _list_orders(state, r),
            "/api/oms/pvt/orders/{orderId}": lambda r: _get_order(state, r),
        },
    )
