"""Faults the simulators cannot produce on their own, added from outside without editing them.

`VtexChaos` wraps the VTEX simulator's ASGI app (detail 404, list/detail status disagreement, the same
record on two pages, scroll token expiry mid-scroll); `ResetProxy` sits in front of it on TCP and resets
connections (RST), which no HTTP-level answer can imitate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

from vtex_pipeline.simulators.server import HOST, free_port

Scope = dict[str, Any]

DETAIL_PREFIX = "/api/oms/pvt/orders/"
LIST_PATH = "/api/oms/pvt/orders"


class VtexChaos:
    """ASGI middleware over the VTEX simulator; every knob is a plain attribute, changeable between runs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state  # so `/_sim/` helpers reading `app.state.sim` keep working
        self.not_found: set[str] = set()  # order ids whose detail answers 404
        self.list_status: dict[str, str] = {}  # order id -> status the list shows (detail unchanged)
        self.dup_pages = False  # repeat the last record of page n at the top of page n+1
        self.scroll_size: int | None = None  # force a small scroll page so a scroll has several pages
        self.scroll_stall = 0.0  # sleep once before the first `_token` call (beyond the idle expiry)
        self._last_list: dict[tuple[str, int], dict[str, Any]] = {}
        self._last_scroll: dict[str, dict[str, Any]] = {}
        self.injected: Counter[str] = Counter()  # what was actually done, for the chaos table

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        if path.startswith(DETAIL_PREFIX) and path[len(DETAIL_PREFIX) :] in self.not_found:
            oid = path[len(DETAIL_PREFIX) :]
            self.injected["detail 404"] += 1
            await _send_json(send, 404, {"error": {"code": "OMS003", "message": f"Order {oid} not found"}})
            return
        if path.endswith("/scroll"):
            if self.scroll_size and "_token" not in query:
                query["_size"] = str(self.scroll_size)
                scope = {**scope, "query_string": urlencode(query).encode()}
            if "_token" in query and self.scroll_stall > 0:
                stall, self.scroll_stall = self.scroll_stall, 0.0
                await asyncio.sleep(stall)
        rewrite = (path == LIST_PATH and (self.list_status or self.dup_pages)) or (
            path.endswith("/scroll") and self.dup_pages
        )
        if not rewrite:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if start.get("status") == 200:
            with contextlib.suppress(ValueError):  # a body truncated by the simulator's own faults
                body = self._rewrite(path, query, headers, json.loads(body))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _rewrite(self, path: str, query: dict[str, str], headers: list, data: Any) -> bytes:
        if path == LIST_PATH and isinstance(data, dict):
            rows = data.get("list") or []
            for row in rows:
                if row.get("orderId") in self.list_status:
                    row["status"] = self.list_status[row["orderId"]]
                    self.injected["list status rewritten"] += 1
            if self.dup_pages:
                key = urlencode(sorted((k, v) for k, v in query.items() if k != "page"))
                page = int(query.get("page", "1"))
                if rows:
                    self._last_list[(key, page)] = dict(rows[-1])
                prev = self._last_list.get((key, page - 1))
                if prev is not None and rows:
                    data["list"] = [prev, *rows]
                    self.injected["order listed twice"] += 1
        elif isinstance(data, list) and self.dup_pages:
            token = next((v.decode() for k, v in headers if k.lower() == b"x-vtex-md-token"), "")
            prev = self._last_scroll.get(token)
            if data:
                self._last_scroll[token] = dict(data[-1])
                if prev is not None:
                    data = [prev, *data]
                    self.injected["customer scrolled twice"] += 1
        return json.dumps(data, ensure_ascii=False).encode()


async def _send_json(send: Any, status: int, obj: Any) -> None:
    body = json.dumps(obj).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ResetProxy:
    """TCP proxy on 127.0.0.1 that answers a share of requests with a connection reset (RST)."""

    METHODS = (b"GET ", b"POST ", b"PUT ", b"DELETE ")

    def __init__(self, upstream_port: int, rate: float, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.resets = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.port = free_port()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, self.port))
        self._sock.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="reset-proxy").start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _reset(self, *socks: socket.socket) -> None:
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((HOST, self.upstream_port))
        except OSError:
            self._reset(client)
            return

        def back() -> None:
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            self._reset(client)

        threading.Thread(target=back, daemon=True).start()
        try:
            while data := client.recv(65536):
                if data.startswith(self.METHODS):
                    with self._lock:
                        hit = self._rng.random() < self.rate
                        self.resets += hit
                    if hit:
                        self._reset(client, upstream)
                        return
                upstream.sendall(data)
        except OSError:
            pass
        self._reset(upstream)
