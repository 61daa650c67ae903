"""The simulator's ASGI app: every /api route goes through auth (401/403 per key) and the fault knobs."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.store import StoreData
from vtex_pipeline.simulators.vtex_server import admin, catalog, feed, masterdata, orders
from vtex_pipeline.simulators.vtex_server.common import DEFAULT_APP_KEYS, ApiError, json_response
from vtex_pipeline.simulators.vtex_server.state import SimState
from vtex_pipeline.vtex import permissions


def create_app(
    store: StoreData,
    *,
    app_keys: dict[str, dict[str, Any]] | None = None,
    faults: FaultSpec | None = None,
    now: Callable[[], datetime] | None = None,
    scroll_idle_seconds: float = 1200,
    index_lag_seconds: float = 0,
) -> Starlette:
    """The simulator ASGI app. `now` drives the 2-year horizon, index lag, written dates and the feed's
    visibility timeout and retention; `POST /_sim/clock` moves it forward at run time."""
    state = SimState(
        store,
        dict(app_keys or DEFAULT_APP_KEYS),
        faults or FaultSpec(),
        now or (lambda: datetime.now(UTC)),
        scroll_idle_seconds,
        index_lag_seconds,
    )

    def api(
        template: str, handler: Callable[[Request], Response | Awaitable[Response]]
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
                resp = json_response({"Message": msg}, decision.status, headers=decision.headers or None)
            else:
                resp = _authorize(state, request) or await _safe(handler, request)
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
        *orders.routes(state, api),
        *masterdata.routes(state, api),
        *catalog.routes(state, api),
        *feed.routes(state, api),
        *admin.routes(state),
    ]
    app = Starlette(routes=routes)
    app.state.sim = state
    return app


async def _safe(handler: Callable[[Request], Response | Awaitable[Response]], request: Request) -> Response:
    """Run a plain or async handler; an ApiError carries the answer."""
    try:
        result = handler(request)
        return await result if inspect.isawaitable(result) else result
    except ApiError as e:
        return e.response


def _authorize(state: SimState, request: Request) -> Response | None:
    key = request.headers.get("x-vtex-api-appkey")
    token = request.headers.get("x-vtex-api-apptoken")
    if not key or not token:
        msg = "Unauthorized: missing X-VTEX-API-AppKey / X-VTEX-API-AppToken"
        return json_response(
            {"Message": msg, "error": {"code": "401", "message": msg, "exception": None}}, 401
        )
    cfg = state.app_keys.get(key)
    if cfg is None or cfg.get("token") != token:
        msg = "Unauthorized: unknown app key or wrong app token"
        return json_response(
            {"Message": msg, "error": {"code": "401", "message": msg, "exception": None}}, 401
        )
    perm = permissions.permission_for(request.method, request.url.path)
    granted = cfg.get("permissions") or []
    if perm is not None and "*" not in granted and perm.key not in granted:
        msg = f"Forbidden: the key lacks {perm.label}"
        return json_response(
            {"Message": msg, "error": {"code": "403", "message": msg, "exception": None}}, 403
        )
    return None


def serve(store: StoreData, host: str = "127.0.0.1", port: int = 8790, **kw: Any) -> None:
    """Serve the simulator (blocking) on 127.0.0.1:port."""
    import uvicorn

    if host != "127.0.0.1":
        raise ValueError("the simulator only listens on 127.0.0.1")
    uvicorn.run(create_app(store, **kw), host=host, port=port, log_level="warning", access_log=False)
