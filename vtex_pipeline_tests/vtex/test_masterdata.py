"""Master Data scroll/search against a small stub: paging headers, token expiry, the 10k cap."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vtex_pipeline.vtex.errors import VtexError
from vtex_pipeline.vtex.http import VtexClient
from vtex_pipeline.vtex.masterdata import (
    find_customer_by_user_id,
    iter_customers,
    parse_content_range,
    scroll_documents,
    search_documents,
)
from vtex_pipeline_tests.vtex.clients import fast_client

RANGE_RE = re.compile(r"^resources=(\d+)-(\d+)$")


class MdStub:
    def __init__(
        self, docs: list[dict[str, Any]], *, expire_after_pages: int | None = None, busy_times: int = 0
    ):
        self.docs = docs
        self.expire_after_pages = expire_after_pages
        self.busy_times = busy_times
        self.scroll_queries: list[dict[str, str]] = []
        self.search_ranges: list[str] = []
        self.tokens: dict[str, int] = {}  # token -> next offset
        self.size: dict[str, int] = {}
        self.expired_once = False

        async def scroll(request: Request) -> JSONResponse:
            q = dict(request.query_params)
            self.scroll_queries.append(q)
            if "_token" in q:
                token = q["_token"]
                assert set(q) == {"_token"}, q
                if token not in self.tokens:
                    return JSONResponse({"Message": "Invalid or expired token"}, status_code=400)
                offset = self.tokens[token]
                if (
                    self.expire_after_pages
                    and not self.expired_once
                    and offset >= self.expire_after_pages * self.size[token]
                ):
                    self.expired_once = True
                    del self.tokens[token]
                    return JSONResponse({"Message": "Token expired"}, status_code=400)
            else:
                if self.busy_times:
                    self.busy_times -= 1
                    return JSONResponse(
                        {"Message": "Maximum simultaneous scrolls rate exceeded (10)"}, status_code=400
                    )
                assert "_fields" in q and int(q["_size"]) <= 1000
                token = f"tok{len(self.tokens) + 1}"
                self.tokens[token] = 0
                self.size[token] = int(q["_size"])
                offset = 0
            size = self.size[token]
            page = self.docs[offset : offset + size]
            self.tokens[token] = offset + size
            return JSONResponse(
                page, headers={"X-VTEX-MD-TOKEN": token, "REST-Content-Total": str(len(self.docs))}
            )

        async def search(request: Request) -> JSONResponse:
            header = request.headers.get("rest-range", "")
            self.search_ranges.append(header)
            m = RANGE_RE.match(header)
            docs = self.docs
            if "userId" in request.query_params:
                docs = [d for d in docs if d.get("userId") == request.query_params["userId"]]
            if not m:
                x, y = 0, 15
            else:
                x, y = int(m.group(1)), int(m.group(2))
            if y - x > 100 or y > 10_000:
                return JSONResponse({"Message": "bad range"}, status_code=400)
            page = docs[x:y]
            return JSONResponse(
                page, headers={"REST-Content-Range": f"resources {x}-{x + len(page)}/{len(docs)}"}
            )

        self.app = Starlette(
            routes=[
                Route("/api/dataentities/{entity}/scroll", scroll),
                Route("/api/dataentities/{entity}/search", search),
            ]
        )


def _docs(n: int) -> list[dict[str, Any]]:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        {"id": f"id-{i:05d}", "userId": f"u-{i}", "createdIn": (base + timedelta(minutes=i)).isoformat()}
        for i in range(n)
    ]


def _client(url: str) -> VtexClient:
    return fast_client(url)


def test_parse_content_range() -> None:
    assert parse_content_range("resources 0-15/76") == (0, 15, 76)
    assert parse_content_range("resources=0-10/98") == (0, 10, 98)
    assert parse_content_range("resources 1-50/703145") == (1, 50, 703145)
    with pytest.raises(VtexError):
        parse_content_range("items 0-1")


def test_scroll_all_documents(serve) -> None:
    stub = MdStub(_docs(2500))
    client = _client(serve(stub.app))
    docs = list(
        scroll_documents(
            client, "CL", fields=["id", "createdIn"], where="a is not null", sort="createdIn ASC", size=1000
        )
    )
    assert [d["id"] for d in docs] == [d["id"] for d in stub.docs]
    first = stub.scroll_queries[0]
    assert first == {
        "_size": "1000",
        "_fields": "id,createdIn",
        "_where": "a is not null",
        "_sort": "createdIn ASC",
    }
    assert all(set(q) == {"_token"} for q in stub.scroll_queries[1:])
    assert len(stub.scroll_queries) == 4  # 3 pages + the final []


def test_scroll_restarts_after_token_expiry_without_duplicates(serve) -> None:
    stub = MdStub(_docs(950), expire_after_pages=2, busy_times=1)
    client = _client(serve(stub.app))
    docs = list(scroll_documents(client, "CL", fields=["id"], size=200, busy_wait_seconds=0.01))
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids)) == 950
    assert stub.expired_once
    assert sum(1 for q in stub.scroll_queries if "_size" in q) == 3  # busy, first scroll, restart


def test_iter_customers_where_clause(serve) -> None:
    stub = MdStub(_docs(10))
    client = _client(serve(stub.app))
    since = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    until = datetime(2025, 3, 2, 0, 0, tzinfo=UTC)
    assert len(list(iter_customers(client, since=since, until=until))) == 10
    q = stub.scroll_queries[0]
    assert q["_where"] == (
        "(updatedIn between 2025-03-01T11:00:00.000Z AND 2025-03-02T00:00:00.000Z) OR "
        "(createdIn between 2025-03-01T11:00:00.000Z AND 2025-03-02T00:00:00.000Z)"
    )
    assert q["_sort"] == "createdIn ASC" and "email" in q["_fields"].split(",")
    list(iter_customers(client, since=None, until=until))
    assert "_where" not in stub.scroll_queries[-2]


def test_search_documents_slices(serve) -> None:
    stub = MdStub(_docs(250))
    client = _client(serve(stub.app))
    docs = search_documents(client, "CL", fields=["id"], sort="createdIn ASC")
    assert [d["id"] for d in docs] == [d["id"] for d in stub.docs]
    assert stub.search_ranges == ["resources=0-100", "resources=100-200", "resources=200-300"]
    assert len(search_documents(client, "CL", fields=["id"], sort="createdIn ASC", max_documents=130)) == 130
    assert find_customer_by_user_id(client, "u-7")["id"] == "id-00007"
    assert find_customer_by_user_id(client, "nobody") is None


def test_search_documents_refuses_past_10k(serve) -> None:
    stub = MdStub(_docs(10_050))
    client = _client(serve(stub.app))
    with pytest.raises(VtexError, match="scroll"):
        search_documents(client, "CL", fields=["id"], sort="createdIn ASC", max_documents=20_000)
    first = search_documents(client, "CL", fields=["id"], sort="createdIn ASC", max_documents=150)
    assert len(first) == 150
    assert all(int(r.split("-")[1]) <= 10_000 for r in stub.search_ranges)
