"""The VtexClient of the client tests: against a local stub, fast (a high rate limit, few attempts and
millisecond back-off), with a throwaway account and credentials unless a test names its own."""

from __future__ import annotations

from typing import Any

from vtex_pipeline.vtex.http import VtexClient, VtexSettings

ACCOUNT = dict(account="t", app_key="test-key", app_token="test-token")
FAST = dict(requests_per_second=2000, max_attempts=2, backoff_base=0.01, backoff_max=0.02)


def fast_client(url: str, **overrides: Any) -> VtexClient:
    """A client of the stub at `url`: ACCOUNT and FAST, each of `overrides` in place of its default."""
    return VtexClient(VtexSettings(base_url=url, **{**ACCOUNT, **FAST, **overrides}))
