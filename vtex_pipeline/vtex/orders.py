"""OMS orders: windowed listing that beats the 30-page cap, and concurrent detail fetches.

List orders serves at most 30 pages of 100 (3,000 orders) per filter, so a window whose total is
larger is halved (at millisecond precision, the filter's resolution) until every slice fits. Slices
are non-overlapping inclusive ranges [start TO end-1ms]; results are de-duplicated on orderId anyway.
Money and status are not trusted from the list (a lagging Solr index): callers fetch each order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from vtex_pipeline.vtex.dates import as_utc, format_filter_datetime, truncate_ms
from vtex_pipeline.vtex.errors import VtexError
from vtex_pipeline.vtex.http import VtexClient, map_concurrent

log = logging.getLogger("vtex_pipeline.vtex")

PER_PAGE = 100
MAX_PAGES = 30
MAX_PER_FILTER = PER_PAGE * MAX_PAGES  # 3,000
ONE_MS = timedelta(milliseconds=1)

ProgressFn = Callable[[int, int | None], None]


def _list_page(client: VtexClient, start: datetime, end: datetime, page: int) -> dict[str, Any]:
    params = {
        "f_creationDate": f"creationDate:[{format_filter_datetime(start)} TO {format_filter_datetime(end - ONE_MS)}]",
        "per_page": PER_PAGE,
        "page": page,
        "orderBy": "creationDate,asc",
    }
    data = client.get_json("/api/oms/pvt/orders", params=params, call="oms.list_orders")
    if not isinstance(data, dict) or not isinstance(data.get("list"), list):
        raise VtexError("OMS List orders returned an unexpected body (no `list` array)")
    return data


def _paging_total(data: dict[str, Any]) -> tuple[int, int]:
    paging = data.get("paging") if isinstance(data.get("paging"), dict) else {}
    total = paging.get("total")
    total = (
        int(total) if isinstance(total, (int, float)) and not isinstance(total, bool) else len(data["list"])
    )
    pages = math.ceil(total / PER_PAGE) if total else 0
    return total, pages


def list_orders(
    client: VtexClient,
    start: datetime,
    end: datetime,
    *,
    sales_channels: set[str] | None = None,
    on_progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Summaries of orders created in the half-open UTC window [start, end), each orderId once.

    Bounds are taken at millisecond precision (naive datetimes are UTC). `sales_channels` keeps only
    summaries whose `salesChannel` (the channel id as a string) is in the set. `on_progress(done,
    None)` is called after each page with the number of distinct orders collected so far.
    """
    start = truncate_ms(as_utc(start))
    end = truncate_ms(as_utc(end))
    if end <= start:
        return []
    seen: dict[str, dict[str, Any]] = {}

    def collect(entries: Iterable[Any]) -> None:
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("orderId"):
                continue
            seen.setdefault(str(entry["orderId"]), entry)
        if on_progress is not None:
            on_progress(len(seen), None)

    def fetch_window(a: datetime, b: datetime) -> None:
        first = _list_page(client, a, b, 1)
        total, pages = _paging_total(first)
        if total > MAX_PER_FILTER:
            mid = truncate_ms(a + (b - a) / 2)
            if mid <= a:
                raise VtexError(
                    f"OMS List orders: {total} orders created in one millisecond at "
                    f"{format_filter_datetime(a)}: cannot split below the 3,000-order cap"
                )
            log.debug(
                "OMS window %s..%s has %d orders (> %d): splitting at %s",
                format_filter_datetime(a),
                format_filter_datetime(b),
                total,
                MAX_PER_FILTER,
                format_filter_datetime(mid),
            )
            fetch_window(a, mid)
            fetch_window(mid, b)
            return
        collect(first["list"])
        if pages > 1:
            for _page, data, exc in map_concurrent(
                lambda p: _list_page(client, a, b, p), range(2, pages + 1), client.settings.concurrency
            ):
                if exc is not None:
                    raise exc
                collect(data["list"])  # type: ignore[index]

    fetch_window(start, end)
    summaries = list(seen.values())
    if sales_channels is not None:
        wanted = {str(s) for s in sales_channels}
        summaries = [s for s in summaries if str(s.get("salesChannel")) in wanted]
    summaries.sort(key=lambda s: (str(s.get("creationDate") or ""), str(s.get("orderId"))))
    return summaries


def get_order(client: VtexClient, order_id: str) -> dict[str, Any]:
    """Full order (money in cents, items, client profile); raises VtexNotFound when unknown/too old."""
    data = client.get_json(f"/api/oms/pvt/orders/{quote(str(order_id), safe='')}", call="oms.get_order")
    if not isinstance(data, dict):
        raise VtexError(f"OMS Get order {order_id} returned {type(data).__name__}, not an object")
    return data


def fetch_orders(
    client: VtexClient,
    order_ids: Iterable[str],
    *,
    on_progress: ProgressFn | None = None,
) -> Iterator[tuple[str, dict[str, Any] | None, Exception | None]]:
    """(order_id, order, None) or (order_id, None, exc) as they complete, settings.concurrency at once.

    Never raises for one order: a 404 yields a VtexNotFound, other failures their exception.
    """
    total = len(order_ids) if hasattr(order_ids, "__len__") else None  # type: ignore[arg-type]
    results = map_concurrent(lambda oid: get_order(client, oid), order_ids, client.settings.concurrency)
    for done, (order_id, order, exc) in enumerate(results, start=1):
        if on_progress is not None:
            on_progress(done, total)
        yield order_id, order, exc
