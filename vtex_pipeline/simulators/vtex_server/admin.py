"""Control endpoints under /_sim/ (no auth, no faults): stats, fixture dump, runtime mutations, faults."""

from __future__ import annotations

import bisect
from collections import Counter
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.vtex_server.common import dumps, json_response, md_error
from vtex_pipeline.simulators.vtex_server.state import SimState


def routes(state: SimState) -> list[Route]:
    return [
        Route("/_sim/stats", partial(_admin_stats, state), methods=["GET"]),
        Route("/_sim/fixture", partial(_admin_fixture, state), methods=["GET"]),
        Route("/_sim/orders", partial(_admin_orders, state), methods=["POST"]),
        Route("/_sim/orders/{orderId}/status", partial(_admin_status, state), methods=["POST"]),
        Route("/_sim/clients", partial(_admin_clients, state), methods=["POST"]),
        Route("/_sim/faults", partial(_admin_faults, state), methods=["POST"]),
        Route("/_sim/reset-stats", partial(_admin_reset, state), methods=["POST"]),
    ]


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
    return json_response(body)


async def _admin_fixture(state: SimState, req: Request) -> Response:
    with state.lock:
        body = dumps(state.store.to_fixture())
    return json_response(None, body=body)


async def _admin_orders(state: SimState, req: Request) -> Response:
    data = await req.json()
    orders = data if isinstance(data, list) else [data]
    if not all(isinstance(o, dict) and o.get("orderId") and o.get("creationDate") for o in orders):
        return md_error(400, "each order needs orderId and creationDate")
    state.upsert_orders(orders)
    return json_response({"upserted": len(orders), "orders": len(state.store.orders)})


async def _admin_status(state: SimState, req: Request) -> Response:
    data = await req.json()
    status = data.get("status") if isinstance(data, dict) else None
    if not status:
        return md_error(400, 'body must be {"status": "..."}')
    o = state.set_status(req.path_params["orderId"], status)
    if o is None:
        return md_error(404, "order not found")
    return json_response({"orderId": o["orderId"], "status": o["status"], "lastChange": o["lastChange"]})


async def _admin_clients(state: SimState, req: Request) -> Response:
    data = await req.json()
    docs = data if isinstance(data, list) else [data]
    if not all(isinstance(d, dict) and d.get("id") for d in docs):
        return md_error(400, "each client needs an id")
    state.upsert_clients(docs)
    return json_response({"upserted": len(docs), "customers": len(state.store.clients)})


async def _admin_faults(state: SimState, req: Request) -> Response:
    data = await req.json()
    try:
        state.faults = FaultSpec.parse((data or {}).get("spec") or "")
    except (ValueError, TypeError) as e:
        return md_error(400, str(e))
    return json_response({"spec": state.faults.to_spec()})


async def _admin_reset(state: SimState, req: Request) -> Response:
    with state.lock:
        state.requests.clear()
        state.responses.clear()
    return json_response({"ok": True})
