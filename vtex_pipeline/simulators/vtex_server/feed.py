"""Orders Feed v3 as VTEX documents it: one SQS-standard-like queue of order changes per app key.

- ``POST|GET|DELETE /api/orders/feed/config``: ``filter`` is ``FromWorkflow`` (``status`` list, not
  validated: a misspelled status matches nothing; no filter means every status) or ``FromOrders``
  (``expression`` in the JSONata subset below, ``disableSingleFire``). Status list and expression
  together (both filter types) is 409. ``queue.visibilityTimeoutInSeconds`` (0..43200) and
  ``MessageRetentionPeriodInSeconds`` (either case; 345600..1209600, default 345600). Re-posting
  replaces the config and keeps the queued items. GET adds ``quantity`` and
  ``approximateAgeOfOldestMessageInSeconds``.
- ``GET /api/orders/feed?maxlot=N``: at most N items (1..10; absent means 10; anything else is 400, as
  "Maximum accepted value is 10"). Each item returned gets a new handle and hides for the visibility
  timeout; uncommitted, it comes back. 404 without a config.
- ``POST /api/orders/feed`` ``{"handles": [...]}``: deletes the items whose *latest* handle is given.
  A stale handle (the item was received again since) or an unknown one is accepted and does nothing,
  as SQS does.
- Retention: an item is dropped ``retention`` seconds after it was enqueued, committed or not; a feed
  that got no event for a whole retention period is deleted (its config too), so GET answers 404.
- No backfill: only changes after the config was created are queued.
- Events: an order created at runtime queues ``order-created`` (lastState "") and, if its status is
  another one, that status; a status change queues the new status with the old one as ``lastState``.
  FromOrders queues on any change of the order's JSON while the expression is true, once per order
  unless ``disableSingleFire`` is true. Items carry ``domain: "Marketplace"`` and no ``origin``.
- ``POST /api/orders/expressions/jsonata`` ``{"Expression", "Document"}`` evaluates an expression.

JSONata subset for FromOrders: paths (``status``, ``clientProfileData.email``; arrays are mapped, and
a comparison with a sequence is true when any element matches), string/number/``true``/``false``/
``null`` literals, ``= != < <= > >=``, ``in [a, b]``, ``and``, ``or``, parentheses, and the functions
``$count(path)``, ``$exists(path)``, ``$not(expr)``. Anything else is a 400 on config.

Time is the simulator's clock (``SimState.now``, moved with ``POST /_sim/clock``), so tests cross a
visibility timeout or a 4-day retention without sleeping. Fault knobs ``feed_dup``, ``feed_shuffle``,
``feed_lost_commit`` (see faults.py) give duplicates, reordering and lost commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import operator
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.store import fmt7
from vtex_pipeline.simulators.vtex_server.common import (
    ApiError,
    ApiWrap,
    api_routes,
    joined,
    json_response,
    oms_error,
)

if TYPE_CHECKING:
    from vtex_pipeline.simulators.vtex_server.state import SimState

FEED_MAX_LOT = 10
VISIBILITY_MAX = 43_200
RETENTION_MIN = 345_600
RETENTION_MAX = 1_209_600
DOMAIN = "Marketplace"
_SECRET = b"vtex-simulator-feed"


class FeedError(ApiError):
    """An answer other than 200, in OMS's error shape; a handler just raises it (the app answers it)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(oms_error(status, message, code=str(status)))
        self.args = (message,)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- JSONata subset

_JTOKEN = re.compile(
    r"""\s*(?:(?P<num>-?\d+(?:\.\d+)?)|"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|"""
    r"""(?P<op>!=|<=|>=|=|<|>)|(?P<punct>[()\[\],])|(?P<fn>\$[A-Za-z]+)|(?P<name>[A-Za-z_][\w.]*))"""
)
Expr = Callable[[Any], Any]
_MISSING: list[Any] = []  # an empty sequence: what a path with no match gives


def _path(doc: Any, dotted: str) -> list[Any]:
    """Values at a dotted path, mapping over arrays as JSONata does."""
    vals = [doc]
    for part in dotted.split("."):
        nxt: list[Any] = []
        for v in vals:
            items = v if isinstance(v, list) else [v]
            for it in items:
                if isinstance(it, dict) and part in it:
                    got = it[part]
                    if isinstance(got, list):
                        nxt.extend(got)
                    else:
                        nxt.append(got)
        vals = nxt
    return vals


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _compare(op: str, left: Any, right: Any) -> bool:
    """JSONata-ish: true when any pair from the two sequences satisfies `op` (no match: false)."""
    for a in _seq(left):
        for b in _seq(right):
            if op in ("=", "!="):
                same = (type(a) is type(b) or (_num(a) and _num(b))) and a == b
                if same == (op == "="):
                    return True
            elif ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))) and _ORDER[op](a, b):
                return True
    return False


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _truthy(v: Any) -> bool:
    if isinstance(v, list):
        return any(_truthy(x) for x in v)
    return v not in (None, False, 0, "")


class _JsonataParser:
    def __init__(self, text: str) -> None:
        self.toks: list[tuple[str, str]] = []
        pos, text = 0, text.strip()
        while pos < len(text):
            m = _JTOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"unsupported JSONata near {text[pos : pos + 20]!r}")
            kind = m.lastgroup or ""
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        t = self._peek()
        if t is None or (kind and t[0] != kind) or (value and t[1] != value):
            raise ValueError(f"expected {value or kind}, got {t[1] if t else 'end'!r}")
        self.i += 1
        return t

    def parse(self) -> Expr:
        e = self._or()
        if self._peek() is not None:
            raise ValueError(f"unexpected {self._peek()[1]!r}")  # type: ignore[index]
        return e

    def _is_word(self, word: str) -> bool:
        t = self._peek()
        return t is not None and t[0] == "name" and t[1] == word

    def _or(self) -> Expr:
        return joined(
            self._and, lambda: self._skip_word("or"), lambda ps: lambda d: any(_truthy(p(d)) for p in ps)
        )

    def _and(self) -> Expr:
        return joined(
            self._cmp, lambda: self._skip_word("and"), lambda ps: lambda d: all(_truthy(p(d)) for p in ps)
        )

    def _skip_word(self, word: str) -> bool:
        if not self._is_word(word):
            return False
        self.i += 1
        return True

    def _cmp(self) -> Expr:
        left = self._atom()
        t = self._peek()
        if t is not None and t[0] == "op":
            self.i += 1
            right = self._atom()
            op = t[1]
            return lambda d: _compare(op, left(d), right(d))
        if self._is_word("in"):
            self.i += 1
            right = self._atom()
            return lambda d: _compare("=", left(d), right(d))
        return left

    def _atom(self) -> Expr:
        kind, v = self._take()
        if kind == "num":
            n: float | int = float(v) if "." in v else int(v)
            return lambda d: n
        if kind in ("dq", "sq"):
            raw = v if kind == "dq" else v.replace("\\'", "'").replace('"', '\\"')
            s = json.loads(f'"{raw}"')
            return lambda d: s
        if kind == "punct" and v == "(":
            e = self._or()
            self._take("punct", ")")
            return e
        if kind == "punct" and v == "[":
            elems: list[Expr] = []
            while (self._peek() or ("", ""))[1] != "]":
                elems.append(self._atom())
                if (self._peek() or ("", ""))[1] == ",":
                    self.i += 1
            self._take("punct", "]")
            return lambda d: [e(d) for e in elems]
        if kind == "fn":
            self._take("punct", "(")
            arg = self._or()
            self._take("punct", ")")
            if v == "$count":
                return lambda d: len(_seq(arg(d)))
            if v == "$exists":
                return lambda d: _seq(arg(d)) != []
            if v == "$not":
                return lambda d: not _truthy(arg(d))
            raise ValueError(f"unsupported function {v}")
        if kind == "name":
            if v in ("true", "false", "null"):
                lit = {"true": True, "false": False, "null": None}[v]
                return lambda d: lit
            if v in ("and", "or", "in"):
                raise ValueError(f"unexpected {v!r}")
            return lambda d: (lambda vals: vals[0] if len(vals) == 1 else vals)(_path(d, v))
        raise ValueError(f"unexpected {v!r}")


def compile_expression(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over an order document; ValueError outside the supported subset."""
    expr = _JsonataParser(text).parse()
    return lambda doc: _truthy(expr(doc))


# ---------------------------------------------------------------- queue


@dataclass
class FeedConfig:
    filter_type: str  # FromWorkflow | FromOrders
    statuses: tuple[str, ...] | None  # FromWorkflow; None = every status
    expression: str | None  # FromOrders
    disable_single_fire: bool
    visibility_timeout: int
    retention: int
    predicate: Callable[[dict[str, Any]], bool] | None = None

    def to_json(self) -> dict[str, Any]:
        flt: dict[str, Any] = {"type": self.filter_type, "disableSingleFire": self.disable_single_fire}
        if self.filter_type == "FromWorkflow":
            flt["status"] = list(self.statuses) if self.statuses is not None else None
        else:
            flt["expression"] = self.expression
        return {
            "filter": flt,
            "queue": {
                "visibilityTimeoutInSeconds": self.visibility_timeout,
                "messageRetentionPeriodInSeconds": self.retention,
            },
        }


@dataclass
class _Message:
    seq: int
    event: dict[str, Any]
    enqueued_at: float
    visible_at: float
    receipt: str | None = None
    receives: int = 0
    handles: list[str] = field(default_factory=list)


@dataclass
class Feed:
    app_key: str
    config: FeedConfig
    last_event_at: float
    # enqueue order (the clock only moves forward, so also enqueued_at order); O(1) commit by seq
    messages: dict[int, _Message] = field(default_factory=dict)
    by_handle: dict[str, _Message] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)
    delivered: int = 0
    committed: int = 0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _handle(app_key: str, msg: _Message, now: datetime) -> str:
    """An opaque JWT-looking handle, as VTEX's (a new one at every delivery)."""
    header = _b64(b'{"alg":"HS256","typ":"JWT"}')
    ev = msg.event
    claims = {
        "AppKey": app_key,
        "Handle": uuid.uuid4().hex,
        "OrderId": ev["orderId"],
        "MessageId": ev["eventId"],
        "Domain": ev["domain"],
        "State": ev["state"],
        "LastState": ev["lastState"],
        "CreatedAt": fmt7(now, z=True),
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(_SECRET, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{sig}"


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise FeedError(400, f"{name} must be an integer")
    if not lo <= int(value) <= hi:
        raise FeedError(400, f"{name} must be between {lo} and {hi}")
    return int(value)


def parse_config(body: Any) -> FeedConfig:
    """Validate a config body; FeedError(400|409) names the problem."""
    if not isinstance(body, dict):
        raise FeedError(400, "The request body must be a JSON object with filter and queue")
    flt = body.get("filter")
    if flt is None:
        flt = {"type": "FromWorkflow"}
    if not isinstance(flt, dict):
        raise FeedError(400, "filter must be an object")
    ftype = flt.get("type") or "FromWorkflow"
    status = flt.get("status")
    expression = flt.get("expression")
    if status and expression:
        raise FeedError(409, "Conflict: filter has both a status list (FromWorkflow) and an expression")
    if ftype not in ("FromWorkflow", "FromOrders"):
        raise FeedError(400, f"filter.type must be FromWorkflow or FromOrders, got {ftype!r}")
    if ftype == "FromWorkflow" and expression:
        raise FeedError(409, "Conflict: a FromWorkflow filter with a FromOrders expression")
    if ftype == "FromOrders" and status:
        raise FeedError(409, "Conflict: a FromOrders filter with a FromWorkflow status list")
    single = flt.get("disableSingleFire", False)
    if not isinstance(single, bool):
        raise FeedError(400, "filter.disableSingleFire must be a boolean")
    predicate = None
    statuses: tuple[str, ...] | None = None
    if ftype == "FromWorkflow":
        if status is not None:
            if not isinstance(status, list) or not all(isinstance(s, str) for s in status):
                raise FeedError(400, "filter.status must be a list of strings")
            statuses = tuple(status) or None
    else:
        if not isinstance(expression, str) or not expression.strip():
            raise FeedError(400, "A FromOrders filter needs an expression")
        try:
            predicate = compile_expression(expression)
        except ValueError as e:
            raise FeedError(400, f"Invalid JSONata expression: {e}") from e
    queue = body.get("queue")
    if not isinstance(queue, dict):
        raise FeedError(
            400, "queue is required: {visibilityTimeoutInSeconds, MessageRetentionPeriodInSeconds}"
        )
    if "visibilityTimeoutInSeconds" not in queue:
        raise FeedError(400, "queue.visibilityTimeoutInSeconds is required")
    vt = _int(queue["visibilityTimeoutInSeconds"], "visibilityTimeoutInSeconds", 0, VISIBILITY_MAX)
    raw_ret = queue.get("MessageRetentionPeriodInSeconds", queue.get("messageRetentionPeriodInSeconds"))
    ret = (
        RETENTION_MIN
        if raw_ret is None
        else _int(raw_ret, "MessageRetentionPeriodInSeconds", RETENTION_MIN, RETENTION_MAX)
    )
    return FeedConfig(
        ftype, statuses, expression if ftype == "FromOrders" else None, single, vt, ret, predicate
    )


class FeedHub:
    """Every app key's feed. Callers hold the simulator lock; `now` is the simulator clock."""

    def __init__(self, faults: Callable[[], FaultSpec]) -> None:
        self.feeds: dict[str, Feed] = {}
        self._faults = faults
        self._seq = 0

    # -- config
    def configure(self, app_key: str, body: Any, now: datetime) -> FeedConfig:
        config = parse_config(body)
        t = now.timestamp()
        feed = self.feeds.get(app_key)
        if feed is None or self._expired(feed, t):
            self.feeds[app_key] = Feed(app_key, config, last_event_at=t)
        else:
            feed.config = config
            feed.last_event_at = t
        return config

    def get(self, app_key: str, now: datetime) -> Feed:
        feed = self.feeds.get(app_key)
        if feed is None or self._expired(feed, now.timestamp()):
            raise FeedError(404, "Feed configuration not found for this appKey")
        return feed

    def delete(self, app_key: str, now: datetime) -> None:
        self.get(app_key, now)
        del self.feeds[app_key]

    def describe(self, app_key: str, now: datetime) -> dict[str, Any]:
        feed = self.get(app_key, now)
        t = now.timestamp()
        oldest = next(iter(feed.messages.values())).enqueued_at if feed.messages else None
        return {
            **feed.config.to_json(),
            "quantity": len(feed.messages),
            "approximateAgeOfOldestMessageInSeconds": 0 if oldest is None else round(t - oldest, 3),
        }

    def _expired(self, feed: Feed, t: float) -> bool:
        """Drop items past retention; delete the feed when it got no event for a retention period."""
        ret = feed.config.retention
        if t - feed.last_event_at >= ret:
            self.feeds.pop(feed.app_key, None)
            return True
        while feed.messages:
            m = next(iter(feed.messages.values()))
            if t - m.enqueued_at < ret:
                break
            del feed.messages[m.seq]
            for h in m.handles:
                feed.by_handle.pop(h, None)
        return False

    # -- read / commit
    def receive(self, app_key: str, maxlot: int, now: datetime) -> list[dict[str, Any]]:
        feed = self.get(app_key, now)
        t = now.timestamp()
        faults = self._faults()
        if faults.feed_roll(faults.feed_shuffle):
            picked = faults.feed_shuffled([m for m in feed.messages.values() if m.visible_at <= t])[:maxlot]
        else:
            picked = []
            for m in feed.messages.values():
                if m.visible_at <= t:
                    picked.append(m)
                    if len(picked) == maxlot:
                        break
        out = []
        for m in picked:
            handle = _handle(app_key, m, now)
            m.receipt = handle
            m.handles.append(handle)
            m.receives += 1
            m.visible_at = t + feed.config.visibility_timeout
            feed.by_handle[handle] = m
            feed.delivered += 1
            out.append({**m.event, "handle": handle})
        return out

    def commit(self, app_key: str, handles: list[str], now: datetime) -> int:
        feed = self.get(app_key, now)
        faults = self._faults()
        done = 0
        for h in handles:
            m = feed.by_handle.get(h)
            if m is None or m.receipt != h or faults.feed_roll(faults.feed_lost_commit):
                continue
            del feed.messages[m.seq]
            for old in m.handles:
                feed.by_handle.pop(old, None)
            feed.committed += 1
            done += 1
        return done

    # -- events
    def order_changed(self, previous: dict[str, Any] | None, order: dict[str, Any], now: datetime) -> None:
        """Queue the events one order change gives, on every feed whose filter takes them."""
        if not self.feeds:
            return
        t = now.timestamp()
        old_status = (previous or {}).get("status")
        new_status = order.get("status")
        last_change = (previous or {}).get("lastChange") or order.get("creationDate") or fmt7(now)
        transitions: list[tuple[str, str]] = []
        if previous is None:
            transitions.append(("order-created", ""))
            if new_status and new_status != "order-created":
                transitions.append((new_status, "order-created"))
        elif new_status != old_status and new_status:
            transitions.append((new_status, old_status or ""))
        changed = previous is None or previous != order
        for feed in list(self.feeds.values()):
            if self._expired(feed, t):
                continue
            cfg = feed.config
            events: list[tuple[str, str]] = []
            if cfg.filter_type == "FromWorkflow":
                events = [tr for tr in transitions if cfg.statuses is None or tr[0] in cfg.statuses]
            elif changed and cfg.predicate is not None:
                oid = str(order.get("orderId"))
                if (cfg.disable_single_fire or oid not in feed.fired) and cfg.predicate(order):
                    feed.fired.add(oid)
                    events = [(str(new_status or ""), str(old_status or ""))]
            for state_, last_state in events:
                self._enqueue(feed, order, state_, last_state, last_change, now)

    def _enqueue(
        self, feed: Feed, order: dict[str, Any], state_: str, last_state: str, last_change: str, now: datetime
    ) -> None:
        t = now.timestamp()
        event = {
            "eventId": uuid.uuid4().hex.upper(),
            "domain": DOMAIN,
            "state": state_,
            "lastState": last_state,
            "orderId": order["orderId"],
            "lastChange": _z(last_change),
            "currentChange": fmt7(now, z=True),
        }
        feed.last_event_at = t
        faults = self._faults()
        copies = 2 if faults.feed_roll(faults.feed_dup) else 1
        for _ in range(copies):
            self._seq += 1
            feed.messages[self._seq] = _Message(self._seq, dict(event), enqueued_at=t, visible_at=t)


def _z(value: str) -> str:
    """VTEX feed dates end in Z; orders store `+00:00`."""
    return value[:-6] + "Z" if value.endswith("+00:00") else value


# ---------------------------------------------------------------- HTTP


def routes(state: SimState, api: ApiWrap) -> list[Route]:
    return api_routes(
        api,
        {
            "/api/orders/feed": lambda r: _read(state, r),
            "POST /api/orders/feed": lambda r: _commit(state, r),
            "/api/orders/feed/config": lambda r: _get_config(state, r),
            "POST /api/orders/feed/config": lambda r: _post_config(state, r),
            "DELETE /api/orders/feed/config": lambda r: _delete_config(state, r),
            "POST /api/orders/expressions/jsonata": _test_expression,
        },
        slashes=("", "/"),
    )


def _key(req: Request) -> str:
    return req.headers.get("x-vtex-api-appkey") or ""


async def _body(req: Request) -> Any:
    raw = await req.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise FeedError(400, f"The request body is not valid JSON: {e}") from e


def _read(state: SimState, req: Request) -> Response:
    raw = req.query_params.get("maxlot")
    if raw is None or raw == "":
        maxlot = FEED_MAX_LOT
    else:
        try:
            maxlot = int(raw)
        except ValueError:
            return oms_error(400, "maxlot must be an integer", code="400")
        if not 1 <= maxlot <= FEED_MAX_LOT:
            return oms_error(400, f"maxlot must be between 1 and {FEED_MAX_LOT}", code="400")
    with state.lock:
        return json_response(state.feed.receive(_key(req), maxlot, state.now()))


async def _commit(state: SimState, req: Request) -> Response:
    body = await _body(req)
    handles = body.get("handles") if isinstance(body, dict) else None
    if not isinstance(handles, list) or not all(isinstance(h, str) for h in handles):
        raise FeedError(400, 'The body must be {"handles": ["...", ...]}')
    with state.lock:
        state.feed.commit(_key(req), handles, state.now())
    return Response(status_code=200)


def _get_config(state: SimState, req: Request) -> Response:
    with state.lock:
        return json_response(state.feed.describe(_key(req), state.now()))


async def _post_config(state: SimState, req: Request) -> Response:
    body = await _body(req)
    with state.lock:
        state.feed.configure(_key(req), body, state.now())
    return Response(status_code=200)


def _delete_config(state: SimState, req: Request) -> Response:
    with state.lock:
        state.feed.delete(_key(req), state.now())
    return Response(status_code=200)


async def _test_expression(req: Request) -> Response:
    try:
        body = await _body(req)
        if not isinstance(body, dict) or not isinstance(body.get("Expression"), str):
            raise FeedError(400, 'The body must be {"Expression": "...", "Document": "<json>"}')
        doc = body.get("Document")
        if isinstance(doc, str):
            doc = json.loads(doc)
        pred = compile_expression(body["Expression"])
    except ValueError as e:  # a FeedError goes up: the app answers it
        return oms_error(400, str(e), code="400")
    return json_response(pred(doc))
