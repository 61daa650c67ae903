"""A local VTEX store speaking the real REST paths, paging limits, headers and errors.

Lets the pipeline be developed, tested and benchmarked without a VTEX account: OMS list/detail
(30-page cap, 2-year horizon, inclusive ms ranges), Master Data CL search/scroll (REST-Range,
10k cap, scroll tokens), Catalog, License-Manager-style 401/403, and injectable faults.

Split like `vtex_pipeline.vtex`: one module per VTEX API (orders, masterdata, catalog), the shared
state, the /_sim/ control endpoints (admin) and the app that wires them. Import from here.
"""

from __future__ import annotations

from vtex_pipeline.simulators.vtex_server.app import create_app, serve
from vtex_pipeline.simulators.vtex_server.common import (
    DEFAULT_APP_KEYS,
    FEED_APP_KEY,
    FEED_APP_TOKEN,
    ApiError,
)
from vtex_pipeline.simulators.vtex_server.masterdata import parse_where
from vtex_pipeline.simulators.vtex_server.state import SimState

__all__ = [
    "DEFAULT_APP_KEYS",
    "FEED_APP_KEY",
    "FEED_APP_TOKEN",
    "ApiError",
    "SimState",
    "create_app",
    "parse_where",
    "serve",
]
