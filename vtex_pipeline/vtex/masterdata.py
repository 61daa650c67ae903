"""Master Data v1 reads: scroll (any volume) and search (small, ≤ 10,000 documents).

Search is capped at 100 per request and 10,000 reachable documents, so bulk pulls use scroll:
`_size` ≤ 1000, a token that expires after 20 min idle, and at most 10 live scrolls per account.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from vtex_pipeline.vtex.dates import format_filter_datetime
from vtex_pipeline.vtex.errors import VtexError
from vtex_pipeline.vtex.http import VtexClient

log = logging.getLogger("vtex_pipeline.vtex")

CL_FIELDS: tuple[str, ...] = (
    "id",
    "userId",
    "email",
    "firstName",
    "lastName",
    "document",
    "documentType",
    "phone",
    "homePhone",
    "cellPhone",
    "businessPhone",
    "gender",
    "birthDate",
    "isNewsletterOptIn",
    "isCorporate",
    "corporateName",
    "localeDefault",
    "createdIn",
    "updatedIn",
)

SEARCH_MAX_PAGE = 100
SEARCH_MAX_REACHABLE = 10_000
SCROLL_MAX_SIZE = 1000
SCROLL_BUSY_WAIT_SECONDS = 30.0
SCROLL_BUSY_MAX_WAITS = 10
SCROLL_MAX_RESTARTS = 5

_CONTENT_RANGE_RE = re.compile(r"resources[ =]\s*(\d+)-(\d+)/(\d+)")


def parse_content_range(header: str | None) -> tuple[int, int, int]:
    """`resources 0-15/76` (real) or `resources=0-15/76` (docs) -> (start, end, total)."""
    m = _CONTENT_RANGE_RE.search(header or "")
    if not m:
        raise VtexError(f"unexpected REST-Content-Range header {header!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _entity_path(entity: str, op: str) -> str:
    return f"/api/dataentities/{quote(entity, safe='')}/{op}"


def _is_token_expired(exc: VtexError) -> bool:
    text = exc.message.lower()
    return exc.status == 400 and ("token" in text or "expired" in text) and "simultaneous" not in text


def _is_too_many_scrolls(exc: VtexError) -> bool:
    return exc.status in (400, 429) and "simultaneous scroll" in exc.message.lower()


def scroll_documents(
    client: VtexClient,
    entity: str,
    *,
    where: str | None = None,
    fields: Sequence[str],
    sort: str | None = None,
    size: int = 1000,
    busy_wait_seconds: float = SCROLL_BUSY_WAIT_SECONDS,
) -> Iterator[dict[str, Any]]:
    """Every document matching `where`, each id once.

    An expired token restarts the scroll from the beginning and skips ids already yielded; the
    account-wide "Maximum simultaneous scrolls" 400 waits for a slot and retries.
    """
    size = max(1, min(int(size), SCROLL_MAX_SIZE))
    path = _entity_path(entity, "scroll")
    first_params: dict[str, Any] = {"_size": size, "_fields": ",".join(fields)}
    if where:
        first_params["_where"] = where
    if sort:
        first_params["_sort"] = sort

    seen: set[str] = set()
    restarts = 0
    busy_waits = 0
    token: str | None = None
    while True:
        params = {"_token": token} if token else first_params
        try:
            data, resp = client.get_json_response(path, params=params, call=f"masterdata.{entity}.scroll")
        except VtexError as exc:
            if _is_too_many_scrolls(exc) and busy_waits < SCROLL_BUSY_MAX_WAITS:
                busy_waits += 1
                log.warning(
                    "Master Data %s: too many simultaneous scrolls on the account; waiting %.0fs (%d/%d)",
                    entity,
                    busy_wait_seconds,
                    busy_waits,
                    SCROLL_BUSY_MAX_WAITS,
                )
                time.sleep(busy_wait_seconds)
                continue
            if token and _is_token_expired(exc) and restarts < SCROLL_MAX_RESTARTS:
                restarts += 1
                log.warning(
                    "Master Data %s: scroll token expired after %d documents; restarting (%d/%d)",
                    entity,
                    len(seen),
                    restarts,
                    SCROLL_MAX_RESTARTS,
                )
                token = None
                continue
            raise
        if not isinstance(data, list):
            raise VtexError(f"Master Data {entity} scroll returned {type(data).__name__}, not a list")
        if not data:
            return
        new_token = resp.headers.get("X-VTEX-MD-TOKEN")
        if new_token:
            token = new_token
        elif not token:
            raise VtexError(f"Master Data {entity} scroll returned no X-VTEX-MD-TOKEN header")
        for doc in data:
            doc_id = doc.get("id") if isinstance(doc, dict) else None
            if doc_id is not None:
                key = str(doc_id)
                if key in seen:
                    continue
                seen.add(key)
            yield doc


def iter_customers(
    client: VtexClient,
    *,
    since: datetime | None,
    until: datetime | None,
    overlap: timedelta = timedelta(minutes=60),
    fields: Sequence[str] = CL_FIELDS,
    size: int = 1000,
) -> Iterator[dict[str, Any]]:
    """CL documents created or updated in [since - overlap, until]; all of them when since is None.

    Never-updated documents have `updatedIn = null`, hence the `OR createdIn`; the overlap absorbs
    Master Data's indexing lag. De-duplicated by id (scroll_documents keeps the seen set).
    """
    where = None
    if since is not None:
        a = format_filter_datetime(since - overlap)
        b = format_filter_datetime(until if until is not None else datetime.now(UTC))
        where = f"(updatedIn between {a} AND {b}) OR (createdIn between {a} AND {b})"
    yield from scroll_documents(client, "CL", where=where, fields=fields, sort="createdIn ASC", size=size)


def search_documents(
    client: VtexClient,
    entity: str,
    *,
    where: str | None = None,
    fields: Sequence[str],
    sort: str,
    page_size: int = 100,
    max_documents: int = 10_000,
    extra_params: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Up to max_documents via REST-Range slices (≤ 100 each, never past the 10,000 reachable).

    Raises VtexError when more than 10,000 documents match and more are asked for: use scroll.
    """
    page_size = max(1, min(int(page_size), SEARCH_MAX_PAGE))
    path = _entity_path(entity, "search")
    params: dict[str, Any] = {"_fields": ",".join(fields), "_sort": sort}
    if where:
        params["_where"] = where
    if extra_params:
        params.update(extra_params)
    limit = max(0, int(max_documents))
    out: list[dict[str, Any]] = []
    total: int | None = None
    start = 0
    while start < min(limit, SEARCH_MAX_REACHABLE):
        end = min(start + page_size, limit, SEARCH_MAX_REACHABLE)
        data, resp = client.get_json_response(
            path,
            params=params,
            headers={"REST-Range": f"resources={start}-{end}"},
            call=f"masterdata.{entity}.search",
        )
        if not isinstance(data, list):
            raise VtexError(f"Master Data {entity} search returned {type(data).__name__}, not a list")
        header = resp.headers.get("REST-Content-Range")
        if header:
            total = parse_content_range(header)[2]
            if total > SEARCH_MAX_REACHABLE and limit > SEARCH_MAX_REACHABLE:
                raise VtexError(
                    f"Master Data {entity} search matches {total} documents but search can only reach "
                    f"{SEARCH_MAX_REACHABLE}: use scroll_documents (or narrow the _where)"
                )
        out.extend(d for d in data if isinstance(d, dict))
        if len(data) < end - start:  # a short (or empty) slice is the last one
            break
        start += len(data)
        if total is not None and start >= total:
            break
    return out[:limit]


def find_customer_by_user_id(
    client: VtexClient, user_id: str, *, fields: Sequence[str] = CL_FIELDS
) -> dict[str, Any] | None:
    """The CL document whose userId is an order's clientProfileData.userProfileId (real e-mail lookup)."""
    docs = search_documents(
        client,
        "CL",
        fields=fields,
        sort="createdIn ASC",
        page_size=1,
        max_documents=1,
        extra_params={"userId": user_id},
    )
    return docs[0] if docs else None
