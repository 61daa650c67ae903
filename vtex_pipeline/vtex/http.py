"""The VTEX client: settings, retries, error mapping, bounded concurrency (pacing, `Retry-After`,
backoff and secret scrubbing are the shared `vtex_pipeline.http_core`).

VTEX throttles per account/route with limits that are not published and vary during the day, and the
seed promises the store's own site is never slowed down. So every request goes through one shared
rate limiter (all endpoints together), concurrency is bounded, 429s are honoured (`Retry-After`) for all
threads at once, and transient failures back off exponentially with full jitter.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict, TypeVar, Unpack

import requests
from requests.adapters import HTTPAdapter

from vtex_pipeline.http_core import (
    RETRY_STATUSES,
    TRANSPORT_ERRORS,
    Attempts,
    RateLimiter,
    RequestStats,
    SessionClient,
    full_jitter,
    parse_retry_after,
)
from vtex_pipeline.vtex.errors import (
    VtexAuthError,
    VtexError,
    VtexNotFound,
    VtexPermissionError,
    VtexRequestFailed,
)
from vtex_pipeline.vtex.permissions import permission_for

log = logging.getLogger("vtex_pipeline.vtex")


_QUERY_RE = re.compile(r"\?[^\s'\"]*")

T = TypeVar("T")
R = TypeVar("R")


def _mask(value: str | None) -> str:
    if not value:
        return "''"
    return "'***'"


@dataclass(repr=False)
class VtexSettings:
    """Connection settings. Defaults are conservative: 10 requests/s and 4 in flight per account."""

    account: str = ""
    environment: str = "vtexcommercestable"
    app_key: str = ""
    app_token: str = ""
    base_url: str | None = None
    requests_per_second: float = 10.0
    concurrency: int = 4
    timeout: float = 30.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 64.0
    retry_after_max: float = 300.0  # a Retry-After above this is capped (a stuck pipeline helps no one)
    # A 429 means "slow down", not "broken": throttled answers do not use up max_attempts, but a call
    # that stays throttled this many times in a row still fails, naming the call.
    max_throttled: int = 60
    # Names of the variables holding key and token, for the 401 message (an integration may use its own).
    credential_vars: str = "VTEX_APP_KEY / VTEX_APP_TOKEN"

    def __post_init__(self) -> None:
        if not self.requests_per_second or self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be > 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")

    @property
    def base(self) -> str:
        """Root URL without trailing slash: VTEX_BASE_URL, else https://{account}.{environment}.com.br."""
        if self.base_url:
            return self.base_url.rstrip("/")
        if not self.account:
            raise VtexError("VTEX_ACCOUNT is not set (nor VTEX_BASE_URL): cannot build the VTEX URL")
        return f"https://{self.account}.{self.environment}.com.br"

    def replace(self, **changes: Any) -> VtexSettings:
        """A copy with some fields changed (e.g. fewer attempts for cheap probes)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VtexSettings:
        """Read VTEX_* variables (see docs/interfaces): unset or empty values keep the defaults."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            value = value.strip()
            return value or None

        kwargs: dict[str, Any] = {}
        for var, attr in (
            ("VTEX_ACCOUNT", "account"),
            ("VTEX_ENVIRONMENT", "environment"),
            ("VTEX_APP_KEY", "app_key"),
            ("VTEX_APP_TOKEN", "app_token"),
            ("VTEX_BASE_URL", "base_url"),
        ):
            value = get(var)
            if value is not None:
                kwargs[attr] = value
        for var, attr, conv in (
            ("VTEX_REQUESTS_PER_SECOND", "requests_per_second", float),
            ("VTEX_CONCURRENCY", "concurrency", int),
        ):
            value = get(var)
            if value is not None:
                try:
                    kwargs[attr] = conv(value)
                except ValueError:
                    raise ValueError(f"{var} must be a number, got {value!r}") from None
        return cls(**kwargs)

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            parts.append(f"{f.name}={_mask(value) if f.name in ('app_key', 'app_token') else repr(value)}")
        return f"VtexSettings({', '.join(parts)})"

    __str__ = __repr__


def _body_message(resp: requests.Response) -> str:
    """The human part of a VTEX error body ({"Message": ...}, {"error": {"message": ...}}, or text)."""
    text = ""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("Message", "message", "error_description", "error", "Error"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("Message") or json.dumps(value)[:300]
            if value:
                text = str(value)
                break
        if not text:
            text = json.dumps(data)[:300]
    elif data is not None:
        text = json.dumps(data)[:300]
    else:
        try:
            text = resp.text
        except Exception:  # noqa: BLE001 - any decoding trouble: no message
            text = ""
    text = " ".join(text.split())
    return text[:300]


class CallOptions(TypedDict, total=False):
    """What a call may add to its method and path (the same for every public call)."""

    params: Mapping[str, Any] | None  # the query string
    headers: Mapping[str, str] | None  # on top of the key, token and JSON headers
    call: str | None  # the name it is counted and logged under (default: method and path)
    max_attempts: int | None  # fewer for cheap probes


class VtexClient(SessionClient):
    """One pooled session to one VTEX account; every call is paced, timed out, retried and mapped.

    Thread-safe for concurrent `request`/`get_json` calls (the assets fan out order/product fetches).
    """

    def __init__(
        self,
        settings: VtexSettings,
        session: requests.Session | None = None,
        *,
        limiter: RateLimiter | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        self.settings = settings
        self.base = settings.base
        self.limiter = limiter or RateLimiter(settings.requests_per_second)
        self.stats = stats or RequestStats()
        self._open_session(session, (settings.app_key, settings.app_token))
        self._auth_headers = {
            "X-VTEX-API-AppKey": settings.app_key,
            "X-VTEX-API-AppToken": settings.app_token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        if self._owns_session:
            pool = max(settings.concurrency, 10)
            adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
            self.session.mount("https://", adapter)
            self.session.mount("http://", adapter)
            self.session.headers.update(self._auth_headers)

    def __repr__(self) -> str:
        return f"VtexClient(base={self.base!r}, settings={self.settings!r})"

    # -- public calls --------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, json_body: Any = None, **options: Unpack[CallOptions]
    ) -> requests.Response:
        """Send with pacing and retries; returns the successful (2xx) response or raises a VtexError.

        `json_body` (POST config/commit) is sent as JSON on every attempt; None sends no body.
        """
        resp, _ = self._send(method, path, False, json_body=json_body, **options)
        return resp

    def get_json(self, path: str, **options: Unpack[CallOptions]) -> Any:
        """GET and decode JSON; a 2xx with a broken/truncated body is retried like a 5xx."""
        _, data = self._send("GET", path, True, **options)
        return data

    def get_json_response(self, path: str, **options: Unpack[CallOptions]) -> tuple[Any, requests.Response]:
        """Like get_json, also returning the response (for paging headers such as REST-Content-Range)."""
        resp, data = self._send("GET", path, True, **options)
        return data, resp

    def map_concurrent(
        self, fn: Callable[[T], R], items: Iterable[T], concurrency: int | None = None
    ) -> Iterator[tuple[T, R | None, Exception | None]]:
        return map_concurrent(fn, items, concurrency or self.settings.concurrency)

    # -- internals -----------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return full_jitter(attempt, self.settings.backoff_base, self.settings.backoff_max)

    def _send(
        self,
        method: str,
        path: str,
        parse_json: bool,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        call: str | None = None,
        max_attempts: int | None = None,
        json_body: Any = None,
    ) -> tuple[requests.Response, Any]:
        method = method.upper()
        if not path.startswith("/"):
            path = "/" + path
        shown_path = path.split("?", 1)[0]
        call_name = call or f"{method} {shown_path}"
        attempts = Attempts(max_attempts or self.settings.max_attempts, self.settings.max_throttled)
        url = self.base + path
        req_headers = dict(self._auth_headers)
        if headers:
            req_headers.update(headers)

        last_status: int | None = None
        last_error: str | None = None
        while True:
            attempts.start()
            self.stats.add_wait(self.limiter.acquire())
            self.stats.record_request(call_name)
            throttled = False
            delay: float | None = None
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    headers=req_headers,
                    json=json_body,
                    timeout=self.settings.timeout,
                    allow_redirects=False,  # never forward the key/token to another host
                )
            except TRANSPORT_ERRORS as exc:
                last_status = None
                # urllib3 messages embed the URL: drop its query string (it may hold e-mails/ids)
                last_error = _QUERY_RE.sub("", self.scrub(f"{type(exc).__name__}: {exc}"))[:300]
            else:
                status = resp.status_code
                last_status = status
                log.debug("VTEX %s %s %s -> %d", call_name, method, shown_path, status)
                if 200 <= status < 300:
                    if not parse_json:
                        return resp, None
                    if status == 204 or not resp.content:
                        if status == 204:
                            return resp, None
                        last_error = "empty body"
                    else:
                        try:
                            return resp, resp.json()
                        except ValueError:
                            last_error = "malformed JSON body"
                elif status in RETRY_STATUSES:
                    last_error = self.scrub(_body_message(resp))[:120] or None
                    if status == 429:
                        throttled = True
                        self.stats.record_throttled()
                    else:
                        self.stats.record_server_error()
                    if status in (429, 503):
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        if retry_after is not None:
                            delay = min(retry_after, self.settings.retry_after_max)
                    resp.close()
                else:
                    raise self._error_for(resp, method, shown_path, call_name)
            if not attempts.retry(throttled):
                break
            if delay is None:
                delay = self._backoff(attempts.throttled_in_a_row if throttled else attempts.made)
            self.stats.record_retry()
            if last_status is None:
                reason = last_error or "no response"
            else:
                reason = f"status {last_status}" + (f": {last_error}" if last_error else "")
            log.warning(
                "VTEX %s (%s %s) attempt %d/%d failed (%s); retrying in %.2fs",
                call_name,
                method,
                shown_path,
                max(attempts.made, 1),
                attempts.limit,
                reason,
                delay,
            )
            if throttled:
                self.limiter.defer(delay)
                self.stats.add_wait(delay)
            time.sleep(delay)
        raise VtexRequestFailed(
            method=method,
            path=shown_path,
            attempts=attempts.limit,
            last_status=last_status,
            last_error=last_error,
            call=call_name,
        )

    def _error_for(self, resp: requests.Response, method: str, path: str, call: str) -> VtexError:
        status = resp.status_code
        if status == 401:
            return VtexAuthError(
                method=method, path=path, call=call, credential_vars=self.settings.credential_vars
            )
        if status == 403:
            return VtexPermissionError(
                method=method, path=path, permission=permission_for(method, path), call=call
            )
        detail = self.scrub(_body_message(resp))
        suffix = f": {detail}" if detail else ""
        if status == 404:
            return VtexNotFound(
                f"VTEX returned 404 on {method} {path}{suffix}",
                status=404,
                method=method,
                path=path,
                call=call,
            )
        return VtexError(
            f"VTEX returned {status} on {method} {path}{suffix}",
            status=status,
            method=method,
            path=path,
            call=call,
        )


def map_concurrent(
    fn: Callable[[T], R], items: Iterable[T], concurrency: int
) -> Iterator[tuple[T, R | None, Exception | None]]:
    """Run fn over items with at most `concurrency` in flight; yield (item, result, exc) as they finish.

    Items are pulled lazily (a bounded window), so 60,000 ids never become 60,000 queued futures.
    Exceptions are yielded, not raised: the caller decides what a failed item means.
    """
    concurrency = max(1, int(concurrency))
    iterator = iter(items)
    pending: dict[Future[R], T] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vtex") as executor:

        def submit_next() -> bool:
            try:
                item = next(iterator)
            except StopIteration:
                return False
            pending[executor.submit(fn, item)] = item
            return True

        try:
            for _ in range(concurrency):
                if not submit_next():
                    break
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    exc = future.exception()
                    if exc is not None:
                        if not isinstance(exc, Exception):
                            raise exc
                        yield item, None, exc
                    else:
                        yield item, future.result(), None
                    submit_next()
        finally:
            for future in pending:
                future.cancel()
