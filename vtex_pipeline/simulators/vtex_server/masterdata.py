"""Master Data v1 CL: `_where` parser, search (REST-Range, 10k reach) and scroll (tokens, 10 live)."""

from __future__ import annotations

import fnmatch
import random
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.store import parse_ms
from vtex_pipeline.simulators.vtex_server.common import (
    DATE_FIELDS,
    FILTERABLE,
    MD_MAX_REACH,
    MD_MAX_WINDOW,
    SCROLL_MAX_LIVE,
    SCROLL_MAX_SIZE,
    SYSTEM_FIELDS,
    ApiError,
    ApiWrap,
    KeyCache,
    Predicate,
    api_routes,
    int_param,
    joined,
    json_response,
    md_error,
)
from vtex_pipeline.simulators.vtex_server.state import Scroll, SimState

# ---------------------------------------------------------------- `_where` parser

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
        return joined(self._and, lambda: self._skip_word("OR"), lambda ps: lambda d: any(p(d) for p in ps))

    def _and(self) -> Predicate:
        return joined(
            self._factor, lambda: self._skip_word("AND"), lambda ps: lambda d: all(p(d) for p in ps)
        )

    def _skip_word(self, word: str) -> bool:
        if self._peek_word() != word:
            return False
        self.i += 1
        return True

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
        raise ApiError(md_error(400, f"Field '{fld}' is not filterable in data entity CL"))


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
        raise ApiError(md_error(400, f"Invalid date for {fld}: {raw!r}")) from e


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
        raise ApiError(md_error(400, f"Invalid _where: {e}")) from e


# ---------------------------------------------------------------- search and scroll


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
        raise ApiError(md_error(404, f"Data entity '{acronym}' not found in this simulator"))
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
            return md_error(400, f"Invalid REST-Range header {raw_range!r}; expected resources=x-y")
        x, y = int(m.group(1)), int(m.group(2))
        if y <= x:
            return md_error(400, "Invalid REST-Range: the end must be greater than the start")
        if y - x > MD_MAX_WINDOW:
            return md_error(
                400,
                f"The maximum number of documents per request is {MD_MAX_WINDOW} "
                f"(REST-Range resources={x}-{y} asks for {y - x})",
            )
    if x >= MD_MAX_REACH or y > MD_MAX_REACH:
        return md_error(
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
    return json_response(page, headers=headers)


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
                return md_error(
                    400,
                    f"Scroll token not found or expired (tokens expire after "
                    f"{state.scroll_idle_seconds:g} seconds idle); start a new scroll",
                )
            sc.last_used = mono
        else:
            size = int_param(req, "_size", 100, md_error)
            if size < 1 or size > SCROLL_MAX_SIZE:
                return md_error(400, f"_size must be between 1 and {SCROLL_MAX_SIZE}")
            if len(state.scrolls) >= SCROLL_MAX_LIVE:
                return md_error(400, f"Maximum simultaneous scrolls rate exceeded ({SCROLL_MAX_LIVE})")
            params = {k: v for k, v in q.items() if k not in ("_size", "_fields", "_token")}
            docs = _md_query(state, req, params)
            token = uuid.uuid4().hex
            sc = Scroll([d["id"] for d in docs], size, _parse_fields(req), mono)
            state.scrolls[token] = sc
        chunk_ids = sc.ids[sc.pos : sc.pos + sc.size]
        sc.pos += len(chunk_ids)
        if not chunk_ids:
            state.scrolls.pop(token, None)
        page = [_project(state.client_by_id[i], sc.fields) for i in chunk_ids if i in state.client_by_id]
        total = len(sc.ids)
    return json_response(page, headers={"X-VTEX-MD-TOKEN": token, "REST-Content-Total": str(total)})


def routes(state: SimState, api: ApiWrap) -> list[Route]:
    return api_routes(
        api,
        {
            "/api/dataentities/{acronym}/search": lambda r: _md_search(state, r),
            "/api/dataentities/{acronym}/scroll": lambda r: _md_scroll(state, r),
        },
    )
