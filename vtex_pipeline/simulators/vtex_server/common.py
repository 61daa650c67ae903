"""Shared pieces of the VTEX store simulator: limits, JSON answers in VTEX's two error dialects."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The Orders Feed needs a key of its own (one feed per app key): the second key is the feed's, with the
# role VTEX's docs ask for (Feed v3 and Hook, plus View order to re-fetch changed orders).
FEED_APP_KEY, FEED_APP_TOKEN = "vtexappkey-sim-FEED", "SIMFEEDTOKEN"
DEFAULT_APP_KEYS: dict[str, dict[str, Any]] = {
    "vtexappkey-sim-DEMO": {"token": "SIMTOKEN", "permissions": ["*"]},
    FEED_APP_KEY: {"token": FEED_APP_TOKEN, "permissions": ["oms.feed", "oms.view_order", "oms.list_orders"]},
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


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None, body: bytes | None = None
) -> Response:
    return Response(
        body if body is not None else dumps(obj),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def oms_error(status: int, message: str, code: str = "1") -> Response:
    return json_response({"error": {"code": code, "message": message, "exception": None}}, status)


def md_error(status: int, message: str) -> Response:
    return json_response({"Message": message}, status)


class ApiError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


Predicate = Callable[[dict[str, Any]], bool]
KeyCache = dict[tuple[int, str], Any]  # (id(doc), field) -> comparable key; cleared when clients change
Endpoint = Callable[[Request], Response | Awaitable[Response]]
# Wraps a plain handler into an /api endpoint (auth, faults, counters): see app.create_app.
ApiWrap = Callable[[str, Endpoint], Handler]


def api_routes(
    api: ApiWrap, endpoints: Mapping[str, Endpoint], *, slashes: tuple[str, ...] = ("",)
) -> list[Route]:
    """Routes for `{"[METHOD ]path": handler}` (GET when no method is named), each wrapped by `api`
    under that key, which names its request counter: a path is written once, not twice per route.

    `slashes=("", "/")` also serves each path with a trailing slash (the feed's clients send both).
    """
    out: list[Route] = []
    for slash in slashes:
        for label, handler in endpoints.items():
            method, _, path = label.rpartition(" ")
            out.append(Route(path + slash, api(label, handler), methods=[method or "GET"]))
    return out


def int_param(req: Request, name: str, default: int, error: Callable[[int, str], Response]) -> int:
    raw = req.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ApiError(error(400, f"Parameter {name} must be an integer")) from e


P = TypeVar("P")


def joined(operand: Callable[[], P], take_word: Callable[[], bool], combine: Callable[[list[P]], P]) -> P:
    """`operand (WORD operand)*` for the simulators' recursive-descent parsers (`_where`, JSONata):
    `take_word` consumes the joining word (OR, AND) when it comes next; one operand stands alone."""
    parts = [operand()]
    while take_word():
        parts.append(operand())
    return parts[0] if len(parts) == 1 else combine(parts)
