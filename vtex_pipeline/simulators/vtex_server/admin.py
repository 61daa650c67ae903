"""Control endpoints under /_sim/ (no auth, no faults): stats, fixture dump, runtime mutations, faults."""

from __future__ import annotations

import bisect
import copy
from collections import Counter
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.store import STATUS_DESCRIPTION, fmt7
from vtex_pipeline.simulators.vtex_server.common import dumps, json_response, md_error
from vtex_pipeline.simulators.vtex_server.state import SimState


def routes(state: SimState) -> list[Route]:
    return [
        Route("/_sim/stats", partial(_admin_stats, state), methods=["GET"]),
        Route("/_sim/fixture", partial(_admin_fixture, state), methods=["GET"]),
        Route("/_sim/orders", partial(_admin_orders, state), methods=["POST"]),
        Route("/_sim/orders/new", partial(_admin_new_order, state), methods=["POST"]),
        Route("/_sim/orders/{orderId}/status", partial(_admin_status, state), methods=["POST"]),
        Route("/_sim/clients", partial(_admin_clients, state), methods=["POST"]),
        Route("/_sim/faults", partial(_admin_faults, state), methods=["POST"]),
        Route("/_sim/keys", partial(_admin_keys, state), methods=["POST"]),
        Route("/_sim/reset-stats", partial(_admin_reset, state), methods=["POST"]),
        Route("/_sim/clock", partial(_admin_clock, state), methods=["GET", "POST"]),
        Route("/_sim/feeds", partial(_admin_feeds, state), methods=["GET"]),
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
            "feeds": {k: len(f.messages) for k, f in state.feed.feeds.items()},
            "now": state.now().isoformat(),
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


async def _admin_keys(state: SimState, req: Request) -> Response:
    """Revoke an app key or change its permissions at run time (a key revoked, a role edited in VTEX
    Admin). Body: ``{"app_key": K, "token": T, "permissions": [...]}`` sets the key (permissions default
    to all); ``{"app_key": K, "revoke": true}`` removes it, so its requests answer 401."""
    data = await req.json()
    key = data.get("app_key") if isinstance(data, dict) else None
    if not key:
        return md_error(400, 'body must be {"app_key": "...", "token": "...", "permissions": [...]}')
    with state.lock:
        if data.get("revoke"):
            state.app_keys.pop(str(key), None)
        else:
            if not data.get("token"):
                return md_error(400, "token is required unless revoke is true")
            state.app_keys[str(key)] = {
                "token": str(data["token"]),
                "permissions": list(data.get("permissions") or ["*"]),
            }
        keys = sorted(state.app_keys)
    return json_response({"app_keys": keys})


async def _admin_reset(state: SimState, req: Request) -> Response:
    with state.lock:
        state.requests.clear()
        state.responses.clear()
    return json_response({"ok": True})


async def _admin_new_order(state: SimState, req: Request) -> Response:
    """Create an order now, copied from an existing one (same buyer and items) with a new id and status.

    Body: ``{"like": "<orderId>", "status": "payment-pending", "orderId": optional}``.
    Queues ``order-created`` (and the status) on the feeds, as a checkout would.
    """
    data = await req.json()
    if not isinstance(data, dict) or not data.get("like"):
        return md_error(400, 'body must be {"like": "<existing orderId>", "status": "..."}')
    with state.lock:
        template = state.store.orders.get(str(data["like"]))
        if template is None:
            return md_error(404, f"order {data['like']} not found")
        now = state.now()
        o = copy.deepcopy(template)
        seq = state.new_order_seq()
        oid = str(data.get("orderId") or f"{seq}-01")
        if oid in state.store.orders:
            return md_error(409, f"order {oid} already exists")
        status = str(data.get("status") or "payment-pending")
        o.update(
            orderId=oid,
            sequence=str(seq),
            creationDate=fmt7(now),
            lastChange=fmt7(now),
            status=status,
            statusDescription=STATUS_DESCRIPTION.get(status, status),
            authorizedDate=fmt7(now) if status in ("payment-approved", "invoiced") else None,
            invoicedDate=fmt7(now) if status == "invoiced" else None,
        )
        state.upsert_orders([o])
    return json_response({"orderId": oid, "status": status, "creationDate": o["creationDate"]})


async def _admin_clock(state: SimState, req: Request) -> Response:
    """GET the simulator clock; POST ``{"advance_seconds": N}`` moves it forward."""
    if req.method == "POST":
        data = await req.json()
        try:
            state.advance_clock(float((data or {}).get("advance_seconds") or 0))
        except (ValueError, TypeError) as e:
            return md_error(400, f"advance_seconds must be a number >= 0 ({e})")
    return json_response({"now": state.now().isoformat(), "offset_seconds": state.clock_offset_seconds})


async def _admin_feeds(state: SimState, req: Request) -> Response:
    """Every app key's feed: queue depth, items in flight, deliveries and commits, config."""
    with state.lock:
        t = state.now().timestamp()
        body = {
            key: {
                "quantity": len(f.messages),
                "in_flight": sum(m.visible_at > t for m in f.messages.values()),
                "delivered": f.delivered,
                "committed": f.committed,
                **f.config.to_json(),
            }
            for key, f in state.feed.feeds.items()
        }
    return json_response(body)
