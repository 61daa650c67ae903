"""A local VTEX store speaking the real REST paths, paging limits, headers and errors.

Lets the pipeline be developed, tested and benchmarked without a VTEX account: OMS list/detail
(30-page cap, 2-year horizon, inclusive ms ranges), Master Data CL search/scroll (REST-Range,
10k cap, scroll tokens), Catalog, License-Manager-style 401/403, and injectable faults.
"""

from __future__ import annotations

import asyncio
import bisect
import fnmatch
import gc
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.store import StoreData, fmt7, parse_ms
from vtex_pipeline.vtex import permissions

DEFAULT_APP_KEYS: dict[str, dict[str, Any]] = {
    "vtexappkey-sim-DEMO": {"token": "SIMTOKEN", "permissions": ["*"]}
}
HORIZON = timedelta(days=730)
MAX_PAGES = 30
MAX_PER_PAGE = 100
MD_MAX_WINDOW = 100
MD_MAX_REACH = 10_000
SCROLL_MAX_SIZE = 1000
SCROLL_MAX_LIVE = 10
BRAND_LIST_CAP = 20_000
FILTERABLE = frozenset(
    {"id", "email", "userId", "document", "createdIn", "updatedIn", "firstName", "lastName"}
)
DATE_FIELDS = frozenset({"createdIn", "updatedIn", "lastInteractionIn"})
SYSTEM_FIELDS = ("id", "accountId", "accountName", "dataEntityId")

Handler = Callable[[Request], Awaitable[Response]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None, body: bytes | None = None
) -> Response:
    return Response(
        body if body is not None else _dumps(obj),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def _oms_error(status: int, message: str, code: str = "1") -> Response:
    return _json({"error": {"code": code, "message": message, "exception": None}}, status)


def _md_error(status: int, message: str) -> Response:
    return _json({"Message": message}, status)


class ApiError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


# ---------------------------------------------------------------- Master Data `_where` parser

_TOKEN = re.compile(
    r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<op><>|!=|>=|<=|=|<|>)|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<word>[^\s()=<>!"']+))"""
)


def _tokenize(s: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse _where near {s[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind in ("dq", "sq"):
            out.append(("str", m.group(kind)))
        else:
            out.append((kind, m.group(kind)))
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return out


Predicate = Callable[[dict[str, Any]], bool]
KeyCache = dict[tuple[int, str], Any]  # (id(doc), field) -> comparable key; cleared when clients change


class _WhereParser:
    def __init__(self, text: str, cache: KeyCache) -> None:
        self.cache = cache
        self.toks = _tokenize(text)
        self.i = 0

    def _peek_word(self) -> str | None:
        if self.i < len(self.toks) and self.toks[self.i][0] == "word":
            return self.toks[self.i][1].upper()
        return None

    def _next(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise ValueError("unexpected end of _where")
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self) -> Predicate:
        p = self._or()
        if self.i != len(self.toks):
            raise ValueError(f"unexpected {self.toks[self.i][1]!r} in _where")
        return p

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._peek_word() == "OR":
            self.i += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda d: any(p(d) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._factor()]
        while self._peek_word() == "AND":
            self.i += 1
            parts.append(self._factor())
        return parts[0] if len(parts) == 1 else (lambda d: all(p(d) for p in parts))

    def _value(self) -> str:
        kind, v = self._next()
        if kind not in ("word", "str"):
            raise ValueError(f"expected a value, got {v!r}")
        return v

    def _factor(self) -> Predicate:
        kind, v = self._next()
        if kind == "lp":
            p = self._or()
            if self._next()[0] != "rp":
                raise ValueError("missing ) in _where")
            return p
        if kind == "word" and v.upper() == "NOT":
            inner = self._factor()
            return lambda d: not inner(d)
        if kind != "word":
            raise ValueError(f"expected a field name, got {v!r}")
        fld = v
        _check_filterable(fld)
        w = self._peek_word()
        if w == "IS":
            self.i += 1
            negate = self._peek_word() == "NOT"
            if negate:
                self.i += 1
            if self._peek_word() != "NULL":
                raise ValueError("expected NULL after IS")
            self.i += 1
            return (lambda d: d.get(fld) is not None) if negate else (lambda d: d.get(fld) is None)
        if w == "BETWEEN":
            self.i += 1
            lo = self._value()
            if self._peek_word() != "AND":
                raise ValueError("expected AND in between")
            self.i += 1
            hi = self._value()
            return _between_pred(fld, lo, hi, self.cache)
        kind, op = self._next()
        if kind != "op":
            raise ValueError(f"expected an operator after {fld!r}")
        return _cmp_pred(fld, op, self._value(), self.cache)


def _check_filterable(fld: str) -> None:
    if fld not in FILTERABLE:
        raise ApiError(_md_error(400, f"Field '{fld}' is not filterable in data entity CL"))


def _key(fld: str, value: Any) -> Any:
    """Comparable key for a stored or queried value (dates as epoch ms)."""
    if value is None:
        return None
    if fld in DATE_FIELDS:
        return parse_ms(str(value)) if not isinstance(value, int) else value
    return str(value).lower()


def _between_pred(fld: str, lo: str, hi: str, cache: KeyCache) -> Predicate:
    klo, khi = _query_key(fld, lo), _query_key(fld, hi)

    def pred(d: dict[str, Any]) -> bool:
        k = _doc_key(d, fld, cache)
        return k is not None and klo <= k <= khi

    return pred


def _cmp_pred(fld: str, op: str, raw: str, cache: KeyCache) -> Predicate:
    if op in ("=", "<>", "!=") and "*" in raw and fld not in DATE_FIELDS:
        pat = raw.lower()

        def wild(d: dict[str, Any]) -> bool:
            k = _doc_key(d, fld, cache)
            hit = k is not None and fnmatch.fnmatchcase(k, pat)
            return hit if op == "=" else not hit

        return wild
    q = _query_key(fld, raw)

    def pred(d: dict[str, Any]) -> bool:
        k = _doc_key(d, fld, cache)
        if op in ("<>", "!="):
            return k != q
        if k is None:
            return False
        if op == "=":
            return bool(k == q)
        if op == ">":
            return bool(k > q)
        if op == "<":
            return bool(k < q)
        if op == ">=":
            return bool(k >= q)
        return bool(k <= q)

    return pred


def _query_key(fld: str, raw: str) -> Any:
    try:
        return _key(fld, raw)
    except ValueError as e:
        raise ApiError(_md_error(400, f"Invalid date for {fld}: {raw!r}")) from e


def _doc_key(d: dict[str, Any], fld: str, cache: KeyCache) -> Any:
    ck = (id(d), fld)
    try:
        return cache[ck]
    except KeyError:
        try:
            k = _key(fld, d.get(fld))
        except ValueError:
            k = None
        cache[ck] = k
        return k


def parse_where(text: str, cache: KeyCache) -> Predicate:
    try:
        return _WhereParser(text, cache).parse()
    except ValueError as e:
        raise ApiError(_md_error(400, f"Invalid _where: {e}")) from e


# ---------------------------------------------------------------- the app state


class _Scroll:
    def __init__(self, ids: list[str], size: int, fields: list[str] | None, now: float) -> None:
        self.ids = ids
        self.pos = 0
        self.size = size
        self.fields = fields
        self.last_used = now


class SimState:
    def __init__(
        self,
        store: StoreData,
        app_keys: dict[str, dict[str, Any]],
        faults: FaultSpec,
        now: Callable[[], datetime],
        scroll_idle_seconds: float,
        index_lag_seconds: float,
    ) -> None:
        self.store = store
        self.app_keys = app_keys
        self.faults = faults
        self.now = now
        self.scroll_idle_seconds = scroll_idle_seconds
        self.index_lag_seconds = index_lag_seconds
        self.lock = threading.RLock()
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.scrolls: dict[str, _Scroll] = {}
        self.search_counter = 0
        self.version = 0
        self._stats_cache: dict[tuple[Any, ...], Any] = {}
        self._detail_cache: dict[str, bytes] = {}
        self.client_by_id: dict[str, dict[str, Any]] = {}
        self.key_cache: KeyCache = {}
        self.sku_index: dict[int, dict[str, Any]] = {}
        self.rebuild()

    # -- indexes
    def rebuild(self) -> None:
        was_enabled = gc.isenabled()
        gc.disable()  # tens of thousands of new dicts: avoid repeated full collections
        try:
            self._rebuild()
        finally:
            if was_enabled:
                gc.enable()

    def _rebuild(self) -> None:
        with self.lock:
            rows = []
            for o in self.store.orders.values():
                rows.append((parse_ms(o["creationDate"]), o["orderId"]))
            rows.sort()
            self.order_keys = [r[0] for r in rows]
            self.order_ids = [r[1] for r in rows]
            self.order_ms = {oid: ms for ms, oid in rows}
            self.summaries = {oid: _summary(self.store.orders[oid]) for oid in self.order_ids}
            self._reindex_clients()
            self._build_sku_index()
            self._bump()

    def _bump(self) -> None:
        self.version += 1
        self._stats_cache.clear()

    def _reindex_clients(self) -> None:
        self.key_cache.clear()
        self.client_by_id = {c["id"]: c for c in self.store.clients}

    def _build_sku_index(self) -> None:
        idx: dict[int, dict[str, Any]] = {}
        for o in self.store.orders.values():
            for it in o.get("items") or []:
                try:
                    sid = int(it["id"])
                except (KeyError, ValueError, TypeError):
                    continue
                idx.setdefault(sid, it)
        self.sku_index = idx

    def upsert_orders(self, orders: list[dict[str, Any]]) -> None:
        with self.lock:
            for o in orders:
                oid = o["orderId"]
                if oid in self.order_ms:
                    old_ms = self.order_ms[oid]
                    i = bisect.bisect_left(self.order_keys, old_ms)
                    while self.order_ids[i] != oid:
                        i += 1
                    del self.order_keys[i]
                    del self.order_ids[i]
                ms = parse_ms(o["creationDate"])
                i = bisect.bisect_right(self.order_keys, ms)
                self.order_keys.insert(i, ms)
                self.order_ids.insert(i, oid)
                self.order_ms[oid] = ms
                self.store.orders[oid] = o
                self.summaries[oid] = _summary(o)
                self._detail_cache.pop(oid, None)
                for it in o.get("items") or []:
                    if str(it.get("id", "")).isdigit():
                        self.sku_index.setdefault(int(it["id"]), it)
            self._bump()

    def set_status(self, oid: str, status: str) -> dict[str, Any] | None:
        with self.lock:
            o = self.store.orders.get(oid)
            if o is None:
                return None
            o["status"] = status
            o["statusDescription"] = _STATUS_DESC.get(status, status)
            o["lastChange"] = fmt7(self.now())
            if status in ("invoiced", "canceled"):
                o["allowCancellation"] = False
            self.summaries[oid] = _summary(o)
            self._detail_cache.pop(oid, None)
            self._bump()
            return o

    def upsert_clients(self, docs: list[dict[str, Any]]) -> None:
        with self.lock:
            for d in docs:
                old = self.client_by_id.get(d["id"])
                if old is not None:
                    # replacing touches the doc, unless the caller sets a new updatedIn explicitly
                    if d.get("updatedIn") is None or d.get("updatedIn") == old.get("updatedIn"):
                        d["updatedIn"] = fmt7(self.now(), z=True)
                    merged = {**old, **d}
                    self.store.clients[self.store.clients.index(old)] = merged
                    self.client_by_id[d["id"]] = merged
                else:
                    d.setdefault("createdIn", fmt7(self.now(), z=True))
                    d.setdefault("updatedIn", None)
                    self.store.clients.append(d)
                    self.client_by_id[d["id"]] = d
            self.key_cache.clear()
            self._bump()

    # -- horizon
    def listable_bounds(self) -> tuple[int, int]:
        """Inclusive [lo, hi] ms of orders the list endpoint can see."""
        now_ms = int(self.now().timestamp() * 1000)
        lo = now_ms - int(HORIZON.total_seconds() * 1000)
        hi = now_ms - int(self.index_lag_seconds * 1000)
        return lo, hi

    def detail_visible(self, oid: str) -> bool:
        ms = self.order_ms.get(oid)
        if ms is None:
            return False
        now_ms = int(self.now().timestamp() * 1000)
        return ms >= now_ms - int(HORIZON.total_seconds() * 1000)


_STATUS_DESC = {
    "waiting-for-sellers-confirmation": "Aguardando confirmação do seller",
    "payment-pending": "Pagamento Pendente",
    "payment-approved": "Pagamento Aprovado",
    "ready-for-handling": "Pronto para o manuseio",
    "handling": "Preparando Entrega",
    "invoiced": "Faturado",
    "canceled": "Cancelado",
    "cancellation-requested": "Cancelamento solicitado",
    "window-to-cancel": "Carência para cancelamento",
}


def _summary(o: dict[str, Any]) -> dict[str, Any]:
    cp = o.get("clientProfileData") or {}
    payments = [
        p.get("paymentSystemName") or ""
        for t in (o.get("paymentData") or {}).get("transactions") or []
        for p in t.get("payments") or []
    ]
    return {
        "orderId": o["orderId"],
        "creationDate": o["creationDate"],
        "clientName": f"{cp.get('firstName') or ''} {cp.get('lastName') or ''}".strip(),
        "items": None,
        "totalValue": int(o.get("value") or 0),
        "paymentNames": ", ".join(dict.fromkeys(p for p in payments if p)),
        "status": o.get("status"),
        "statusDescription": o.get("statusDescription") or _STATUS_DESC.get(o.get("status") or "", ""),
        "marketPlaceOrderId": o.get("marketplaceOrderId") or None,
        "sequence": str(o.get("sequence") or ""),
        "salesChannel": str(o.get("salesChannel") or ""),
        "affiliateId": o.get("affiliateId") or "",
        "origin": o.get("origin") or "Marketplace",
        "workflowInErrorState": bool(o.get("workflowIsInError", False)),
        "workflowInRetry": False,
        "lastMessageUnread": None,
        "ShippingEstimatedDate": None,
        "ShippingEstimatedDateMax": None,
        "ShippingEstimatedDateMin": None,
        "orderIsComplete": o.get("status") is not None,
        "listId": None,
        "listType": None,
        "authorizedDate": o.get("authorizedDate"),
        "callCenterOperatorName": None,
        "totalItems": sum(int(i.get("quantity") or 0) for i in o.get("items") or []),
        "currencyCode": ((o.get("storePreferencesData") or {}).get("currencyCode")) or "BRL",
    }


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
        raise ApiError(_oms_error(400, f"Invalid filter f_{name}: expected {name}:[A TO B]"))
    try:
        lo = None if m.group(2) == "*" else parse_ms(m.group(2))
        hi = None if m.group(3) == "*" else parse_ms(m.group(3))
    except ValueError as e:
        raise ApiError(_oms_error(400, f"Invalid date in f_{name}: {e}")) from e
    return lo, hi


def _int_param(req: Request, name: str, default: int, error: Callable[[int, str], Response]) -> int:
    raw = req.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ApiError(error(400, f"Parameter {name} must be an integer")) from e


# ---------------------------------------------------------------- app


def create_app(
    store: StoreData,
    *,
    app_keys: dict[str, dict[str, Any]] | None = None,
    faults: FaultSpec | None = None,
    now: Callable[[], datetime] | None = None,
    scroll_idle_seconds: float = 1200,
    index_lag_seconds: float = 0,
) -> Starlette:
    """The simulator ASGI app. `now` drives the 2-year horizon, index lag and written dates."""
    state = SimState(
        store,
        dict(app_keys or DEFAULT_APP_KEYS),
        faults or FaultSpec(),
        now or (lambda: datetime.now(UTC)),
        scroll_idle_seconds,
        index_lag_seconds,
    )

    def api(
        template: str, handler: Callable[[Request], Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            with state.lock:
                state.requests[template] += 1
            decision = state.faults.decide()
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)
            if decision.status is not None:
                msg = {429: "Too Many Requests", 503: "Service Unavailable", 504: "Gateway Timeout"}[
                    decision.status
                ]
                resp = _json({"Message": msg}, decision.status, headers=decision.headers or None)
            else:
                resp = _authorize(state, request) or _safe(handler, request, state)
                if decision.malformed and resp.status_code == 200:
                    body = bytes(resp.body)
                    resp = Response(
                        body[: max(1, len(body) // 2)],
                        status_code=200,
                        media_type="application/json; charset=utf-8",
                    )
            with state.lock:
                state.responses[str(resp.status_code)] += 1
            return resp

        return endpoint

    routes = [
        Route("/api/oms/pvt/orders", api("/api/oms/pvt/orders", lambda r: _list_orders(state, r))),
        Route(
            "/api/oms/pvt/orders/{orderId}",
            api("/api/oms/pvt/orders/{orderId}", lambda r: _get_order(state, r)),
        ),
        Route(
            "/api/dataentities/{acronym}/search",
            api("/api/dataentities/{acronym}/search", lambda r: _md_search(state, r)),
        ),
        Route(
            "/api/dataentities/{acronym}/scroll",
            api("/api/dataentities/{acronym}/scroll", lambda r: _md_scroll(state, r)),
        ),
        Route(
            "/api/catalog_system/pub/category/tree/{levels}",
            api("/api/catalog_system/pub/category/tree/{levels}", lambda r: _category_tree(state, r)),
        ),
        Route(
            "/api/catalog_system/pvt/brand/list",
            api("/api/catalog_system/pvt/brand/list", lambda r: _json(state.store.brands[:BRAND_LIST_CAP])),
        ),
        Route(
            "/api/catalog_system/pvt/brand/pagedlist",
            api("/api/catalog_system/pvt/brand/pagedlist", lambda r: _brand_paged(state, r)),
        ),
        Route(
            "/api/catalog/pvt/product/{productId}",
            api("/api/catalog/pvt/product/{productId}", lambda r: _product(state, r)),
        ),
        Route(
            "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}",
            api("/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}", lambda r: _sku(state, r)),
        ),
        Route(
            "/api/catalog_system/pvt/saleschannel/list",
            api("/api/catalog_system/pvt/saleschannel/list", lambda r: _json(state.store.sales_channels)),
        ),
        Route("/_sim/stats", partial(_admin_stats, state), methods=["GET"]),
        Route("/_sim/fixture", partial(_admin_fixture, state), methods=["GET"]),
        Route("/_sim/orders", partial(_admin_orders, state), methods=["POST"]),
        Route("/_sim/orders/{orderId}/status", partial(_admin_status, state), methods=["POST"]),
        Route("/_sim/clients", partial(_admin_clients, state), methods=["POST"]),
        Route("/_sim/faults", partial(_admin_faults, state), methods=["POST"]),
        Route("/_sim/reset-stats", partial(_admin_reset, state), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sim = state
    return app


def _safe(handler: Callable[[Request], Response], request: Request, state: SimState) -> Response:
    try:
        return handler(request)
    except ApiError as e:
        return e.response


def _authorize(state: SimState, request: Request) -> Response | None:
    key = request.headers.get("x-vtex-api-appkey")
    token = request.headers.get("x-vtex-api-apptoken")
    if not key or not token:
        msg = "Unauthorized: missing X-VTEX-API-AppKey / X-VTEX-API-AppToken"
        return _json({"Message": msg, "error": {"code": "401", "message": msg, "exception": None}}, 401)
    cfg = state.app_keys.get(key)
    if cfg is None or cfg.get("token") != token:
        msg = "Unauthorized: unknown app key or wrong app token"
        return _json({"Message": msg, "error": {"code": "401", "message": msg, "exception": None}}, 401)
    perm = permissions.permission_for(request.method, request.url.path)
    granted = cfg.get("permissions") or []
    if perm is not None and "*" not in granted and perm.key not in granted:
        msg = f"Forbidden: the key lacks {perm.label}"
        return _json({"Message": msg, "error": {"code": "403", "message": msg, "exception": None}}, 403)
    return None


# ---------------------------------------------------------------- OMS


def _list_orders(state: SimState, req: Request) -> Response:
    q = req.query_params
    per_page = _int_param(req, "per_page", 15, _oms_error)
    page = _int_param(req, "page", 1, _oms_error)
    if per_page < 1 or per_page > MAX_PER_PAGE:
        return _oms_error(400, f"per_page must be between 1 and {MAX_PER_PAGE}")
    if page < 1:
        return _oms_error(400, "page must be >= 1")
    if page > MAX_PAGES:
        return _oms_error(
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
        return _oms_error(400, f"Invalid orderBy {q.get('orderBy')!r}")
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
    return _json(body)


def _get_order(state: SimState, req: Request) -> Response:
    oid = req.path_params["orderId"]
    with state.lock:
        if not state.detail_visible(oid):
            return _oms_error(404, f"Order {oid} not found", code="OMS003")
        body = state._detail_cache.get(oid)
        if body is None:
            body = _dumps(state.store.orders[oid])
            state._detail_cache[oid] = body
    return _json(None, body=body)


# ---------------------------------------------------------------- Master Data


_REST_RANGE = re.compile(r"^\s*resources\s*[= ]\s*(\d+)\s*-\s*(\d+)\s*$")


def _project(doc: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None:
        return dict(doc)
    return {f: doc.get(f) for f in fields}


def _parse_fields(req: Request) -> list[str] | None:
    raw = req.query_params.get("_fields")
    if raw is None or raw.strip() == "":
        return list(SYSTEM_FIELDS)
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    return None if "_all" in fields else fields


def _md_query(state: SimState, req: Request, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Documents matching `_where` + plain field filters, sorted by `_sort` (None order if absent)."""
    q = params if params is not None else dict(req.query_params)
    acronym = req.path_params.get("acronym", "CL")
    if acronym != "CL":
        raise ApiError(_md_error(404, f"Data entity '{acronym}' not found in this simulator"))
    preds: list[Predicate] = []
    cache = state.key_cache
    if q.get("_where"):
        preds.append(parse_where(q["_where"], cache))
    for k, v in q.items():
        if k.startswith("_") or k in ("an",):
            continue
        _check_filterable(k)
        preds.append(_cmp_pred(k, "=", v, cache))
    docs = state.store.clients
    docs = [d for d in docs if all(p(d) for p in preds)] if preds else list(docs)
    if q.get("_sort"):
        parts = q["_sort"].split()
        fld = parts[0]
        desc = len(parts) > 1 and parts[1].upper() == "DESC"
        present = [d for d in docs if _doc_key(d, fld, cache) is not None]
        missing = [d for d in docs if _doc_key(d, fld, cache) is None]
        present.sort(key=lambda d: (_doc_key(d, fld, cache), d["id"]), reverse=desc)
        docs = present + missing
    return docs


def _md_search(state: SimState, req: Request) -> Response:
    raw_range = req.headers.get("rest-range")
    if raw_range is None:
        x, y = 0, 15
    else:
        m = _REST_RANGE.match(raw_range)
        if not m:
            return _md_error(400, f"Invalid REST-Range header {raw_range!r}; expected resources=x-y")
        x, y = int(m.group(1)), int(m.group(2))
        if y <= x:
            return _md_error(400, "Invalid REST-Range: the end must be greater than the start")
        if y - x > MD_MAX_WINDOW:
            return _md_error(
                400,
                f"The maximum number of documents per request is {MD_MAX_WINDOW} "
                f"(REST-Range resources={x}-{y} asks for {y - x})",
            )
    if x >= MD_MAX_REACH or y > MD_MAX_REACH:
        return _md_error(
            400,
            f"Search can only reach the first {MD_MAX_REACH} documents (REST-Range "
            f"resources={x}-{y}); use the scroll endpoint to read more",
        )
    fields = _parse_fields(req)
    with state.lock:
        docs = _md_query(state, req)
        if not req.query_params.get("_sort"):
            state.search_counter += 1
            random.Random(state.search_counter).shuffle(docs)
        total = len(docs)
        page = [_project(d, fields) for d in docs[x:y]]
    end = x + len(page)
    headers = {"REST-Content-Range": f"resources {x}-{end}/{total}"}
    return _json(page, headers=headers)


def _md_scroll(state: SimState, req: Request) -> Response:
    q = req.query_params
    mono = time.monotonic()
    with state.lock:
        for t in [t for t, s in state.scrolls.items() if mono - s.last_used > state.scroll_idle_seconds]:
            del state.scrolls[t]
        token = q.get("_token")
        if token:
            sc = state.scrolls.get(token)
            if sc is None:
                return _md_error(
                    400,
                    f"Scroll token not found or expired (tokens expire after "
                    f"{state.scroll_idle_seconds:g} seconds idle); start a new scroll",
                )
            sc.last_used = mono
        else:
            size = _int_param(req, "_size", 100, _md_error)
            if size < 1 or size > SCROLL_MAX_SIZE:
                return _md_error(400, f"_size must be between 1 and {SCROLL_MAX_SIZE}")
            if len(state.scrolls) >= SCROLL_MAX_LIVE:
                return _md_error(400, f"Maximum simultaneous scrolls rate exceeded ({SCROLL_MAX_LIVE})")
            params = {k: v for k, v in q.items() if k not in ("_size", "_fields", "_token")}
            docs = _md_query(state, req, params)
            token = uuid.uuid4().hex
            sc = _Scroll([d["id"] for d in docs], size, _parse_fields(req), mono)
            state.scrolls[token] = sc
        chunk_ids = sc.ids[sc.pos : sc.pos + sc.size]
        sc.pos += len(chunk_ids)
        if not chunk_ids:
            state.scrolls.pop(token, None)
        page = [_project(state.client_by_id[i], sc.fields) for i in chunk_ids if i in state.client_by_id]
        total = len(sc.ids)
    return _json(page, headers={"X-VTEX-MD-TOKEN": token, "REST-Content-Total": str(total)})


# ---------------------------------------------------------------- Catalog


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
        return _md_error(400, "categoryLevels must be an integer")
    return _json(_trim_tree(state.store.category_tree, max(levels, 1)))


def _brand_paged(state: SimState, req: Request) -> Response:
    size = _int_param(req, "pageSize", 20, _md_error)
    page = _int_param(req, "page", 1, _md_error)
    if size < 1 or page < 1:
        return _md_error(400, "pageSize and page must be >= 1")
    brands = state.store.brands
    total = len(brands)
    return _json(
        {
            "items": brands[(page - 1) * size : page * size],
            "paging": {"page": page, "perPage": size, "total": total, "pages": math.ceil(total / size)},
        }
    )


def _product(state: SimState, req: Request) -> Response:
    pid = int(req.path_params["productId"]) if req.path_params["productId"].isdigit() else -1
    p = state.store.products.get(pid)
    if p is None:
        return _md_error(404, f"Product {req.path_params['productId']} not found")
    return _json(p)


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
        return _md_error(404, f"SKU {req.path_params['skuId']} not found")
    return _json(sku)


# ---------------------------------------------------------------- admin (/_sim/, no auth, no faults)


async def _admin_stats(state: SimState, req: Request) -> Response:
    with state.lock:
        lo, _ = state.listable_bounds()
        i = bisect.bisect_left(state.order_keys, lo)
        listable = state.order_ids[i:]
        by_status: Counter[str] = Counter()
        n_items = 0
        for oid in listable:
            by_status[str(state.summaries[oid]["status"])] += 1
            n_items += len(state.store.orders[oid].get("items") or [])
        body = {
            "customers": len(state.store.clients),
            "orders": len(state.store.orders),
            "orders_listable": len(listable),
            "orders_by_status": dict(by_status),
            "items": n_items,
            "requests": dict(state.requests),
            "responses": dict(state.responses),
            "live_scrolls": len(state.scrolls),
            "faults": state.faults.to_spec(),
        }
    return _json(body)


async def _admin_fixture(state: SimState, req: Request) -> Response:
    with state.lock:
        body = _dumps(state.store.to_fixture())
    return _json(None, body=body)


async def _admin_orders(state: SimState, req: Request) -> Response:
    data = await req.json()
    orders = data if isinstance(data, list) else [data]
    if not all(isinstance(o, dict) and o.get("orderId") and o.get("creationDate") for o in orders):
        return _md_error(400, "each order needs orderId and creationDate")
    state.upsert_orders(orders)
    return _json({"upserted": len(orders), "orders": len(state.store.orders)})


async def _admin_status(state: SimState, req: Request) -> Response:
    data = await req.json()
    status = data.get("status") if isinstance(data, dict) else None
    if not status:
        return _md_error(400, 'body must be {"status": "..."}')
    o = state.set_status(req.path_params["orderId"], status)
    if o is None:
        return _md_error(404, "order not found")
    return _json({"orderId": o["orderId"], "status": o["status"], "lastChange": o["lastChange"]})


async def _admin_clients(state: SimState, req: Request) -> Response:
    data = await req.json()
    docs = data if isinstance(data, list) else [data]
    if not all(isinstance(d, dict) and d.get("id") for d in docs):
        return _md_error(400, "each client needs an id")
    state.upsert_clients(docs)
    return _json({"upserted": len(docs), "customers": len(state.store.clients)})


async def _admin_faults(state: SimState, req: Request) -> Response:
    data = await req.json()
    try:
        state.faults = FaultSpec.parse((data or {}).get("spec") or "")
    except (ValueError, TypeError) as e:
        return _md_error(400, str(e))
    return _json({"spec": state.faults.to_spec()})


async def _admin_reset(state: SimState, req: Request) -> Response:
    with state.lock:
        state.requests.clear()
        state.responses.clear()
    return _json({"ok": True})


def serve(store: StoreData, host: str = "127.0.0.1", port: int = 8790, **kw: Any) -> None:
    """Serve the simulator (blocking) on 127.0.0.1:port."""
    import uvicorn

    if host != "127.0.0.1":
        raise ValueError("the simulator only listens on 127.0.0.1")
    uvicorn.run(create_app(store, **kw), host=host, port=port, log_level="warning", access_log=False)
