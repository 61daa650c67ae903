"""Fixtures for the VTEX client tests: a local uvicorn server running a scripted Starlette app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

try:  # the simulators' helper, when it is importable
    from vtex_pipeline.simulators.server import ServerThread as _ServerThread
except Exception:  # noqa: BLE001 - fall back to the minimal runner below
    _ServerThread = None


class _MiniServerThread:
    """Minimal uvicorn-in-a-thread runner (used only if the simulators' ServerThread is missing)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _MiniServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """serve(app) -> base URL; every server started is stopped at teardown."""
    started: list[Any] = []

    def _serve(app: Any) -> str:
        server = (_ServerThread or _MiniServerThread)(app).start()
        started.append(server)
        return server.url

    yield _serve
    for server in started:
        server.stop()
