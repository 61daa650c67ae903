"""The simulator's mutable state: the store, its order/client indexes, live scrolls, counters, faults.

One lock guards it all: handlers run on the event loop and admin mutations may come from test threads.
"""

from __future__ import annotations

import bisect
import gc
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from vtex_pipeline.simulators.faults import FaultSpec
from vtex_pipeline.simulators.store import STATUS_DESCRIPTION, StoreData, fmt7, parse_ms
from vtex_pipeline.simulators.vtex_server.common import HORIZON, KeyCache
from vtex_pipeline.simulators.vtex_server.feed import FeedHub


class Scroll:
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
        self._clock = now
        self.clock_offset_seconds = 0.0
        self.feed = FeedHub(lambda: self.faults)
        self.scroll_idle_seconds = scroll_idle_seconds
        self.index_lag_seconds = index_lag_seconds
        self.lock = threading.RLock()
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.scrolls: dict[str, Scroll] = {}
        self.search_counter = 0
        self.version = 0
        self._stats_cache: dict[tuple[Any, ...], Any] = {}
        self._detail_cache: dict[str, bytes] = {}
        self.client_by_id: dict[str, dict[str, Any]] = {}
        self.key_cache: KeyCache = {}
        self.sku_index: dict[int, dict[str, Any]] = {}
        self._next_seq: int | None = None
        self.rebuild()

    def now(self) -> datetime:
        """The simulator's clock: the `now` it was built with, moved on by `advance_clock`."""
        return self._clock() + timedelta(seconds=self.clock_offset_seconds)

    def advance_clock(self, seconds: float) -> datetime:
        """Move the clock forward (feed visibility timeout and retention, horizon, written dates)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self.clock_offset_seconds += seconds
            self._bump()
            return self.now()

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
                previous = self.store.orders.get(oid)
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
                self.feed.order_changed(previous, o, self.now())
            self._bump()

    def new_order_seq(self) -> int:
        """A sequence number no order id uses yet, for orders created at run time (O(1) after the first)."""
        with self.lock:
            if self._next_seq is None:
                heads = (o.split("-")[0] for o in self.order_ids)
                self._next_seq = max((int(h) for h in heads if h.isdigit()), default=0) + 1
            while f"{self._next_seq}-01" in self.store.orders:
                self._next_seq += 1
            self._next_seq += 1
            return self._next_seq - 1

    def set_status(self, oid: str, status: str) -> dict[str, Any] | None:
        with self.lock:
            o = self.store.orders.get(oid)
            if o is None:
                return None
            previous = dict(o)
            now = self.now()
            o["status"] = status
            o["statusDescription"] = STATUS_DESCRIPTION.get(status, status)
            o["lastChange"] = fmt7(now)
            if status in ("invoiced", "canceled"):
                o["allowCancellation"] = False
            # the workflow dates the list filters (f_authorizedDate, f_invoicedDate) and the detail show
            if status == "payment-approved" and not o.get("authorizedDate"):
                o["authorizedDate"] = fmt7(now)
            if status == "invoiced" and not o.get("invoicedDate"):
                o["invoicedDate"] = fmt7(now)
            self.feed.order_changed(previous, o, now)
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
        "statusDescription": o.get("statusDescription") or STATUS_DESCRIPTION.get(o.get("status") or "", ""),
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
