"""HTTP client for the icomm contacts API (reference §1.3): paced, retried, secrets kept out of errors.

`SaveMultiContact` answers per contact, index-aligned with the request. A failure of the whole call
(transport error, timeout, HTTP 429/5xx, top-level StatusCode != 1) says nothing about the contacts, and
upsert-by-email is idempotent, so the whole batch is retried with backoff. A per-contact StatusCode != 1
is icomm refusing that record (e.g. an invalid e-mail): retrying at once would be refused again, so it
is returned to the caller, which dead-letters it.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import requests

from vtex_pipeline import http_core
from vtex_pipeline.icomm.settings import IcommSettings

log = logging.getLogger("vtex_pipeline.icomm")

SAVE_MULTI = "/Contacts/SaveMultiContact.Json/"
SAVE_ONE = "/Contacts/SaveContact.Json/"
LIST_FULL = "/Contacts/ListFull.Json/"
VERIFY_PROBE_EMAIL = "vtex-pipeline-verify@example.invalid"
# The client's keywords that `IcommSettings` (and the Dagster resource) hold under the same names.
CLIENT_TUNING = (
    "timeout",
    "max_attempts",
    "requests_per_second",
    "backoff_base",
    "backoff_max",
    "retry_after_max",
)


class IcommError(RuntimeError):
    """An icomm call failed; the message never holds the API key."""

    def __init__(self, message: str, *, status: int | None = None, call: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.call = call


class IcommAuthError(IcommError):
    """401/403: the key is wrong or the auth scheme is not the one this account accepts."""


class IcommRequestFailed(IcommError):
    """A call still failed after every attempt (icomm down, throttling, timeouts)."""

    def __init__(
        self, message: str, *, status: int | None, call: str, attempts: int, last_error: str
    ) -> None:
        super().__init__(message, status=status, call=call)
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True)
class ContactResult:
    """icomm's answer for one contact of a batch, matched by position."""

    email: str
    ok: bool
    status_code: int | None
    message: str = ""


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.delay = delay


class IcommStats(http_core.RequestStats):
    """The VTEX client's counters plus timeouts (a lost answer to a written batch is worth telling apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts = 0

    def record_timeout(self) -> None:
        with self._lock:
            self.timeouts += 1

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["timeouts"] = self.timeouts
        return snap


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body exactly as sent (and as a dry run writes it): compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def auth_header(api_key: str, scheme: Literal["basic", "raw"]) -> str:
    """`Basic base64(key:)` as icomm documents, or the key itself as observed in icomm's own code."""
    if scheme == "raw":
        return api_key
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class IcommClient(http_core.SessionClient):
    """One pooled session to icomm for one API key and one profile."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        profile_key: str,
        auth_scheme: Literal["basic", "raw"] = "basic",
        *,
        timeout: float = 60.0,
        max_attempts: int = 5,
        requests_per_second: float = 2.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_max: float = 300.0,
        max_throttled: int = 30,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise IcommError("the icomm API key is empty (set ICOMM_API_KEY)")
        if auth_scheme not in ("basic", "raw"):
            raise ValueError("auth_scheme must be 'basic' or 'raw'")
        self.base_url = base_url.rstrip("/")
        self.profile_key = profile_key
        self.auth_scheme = auth_scheme
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.max_throttled = max_throttled
        self.limiter = http_core.RateLimiter(requests_per_second)
        self.stats = IcommStats()
        self._sleep = sleep
        header = auth_header(api_key, auth_scheme)
        self._headers = {
            "Authorization": header,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._open_session(session, {api_key, header, header.removeprefix("Basic ")})

    @classmethod
    def from_settings(cls, settings: IcommSettings, api_key: str, **kw: Any) -> IcommClient:
        tuning = settings.model_dump(include=set(CLIENT_TUNING))
        return cls(settings.base_url, api_key, settings.profile_key, settings.auth_scheme, **tuning, **kw)

    def __repr__(self) -> str:
        return f"IcommClient(base_url={self.base_url!r}, auth_scheme={self.auth_scheme!r}, api_key='***')"

    __str__ = __repr__

    # -- calls -------------------------------------------------------------------------------------

    def save_multi_contact(self, contacts: Sequence[Mapping[str, Any]]) -> list[ContactResult]:
        """Upsert a batch; one result per contact, in request order. Raises if the batch as a whole fails."""
        if not contacts:
            return []
        body = {"ProfileKey": self.profile_key, "ContactList": list(contacts)}

        def check(data: Any) -> list[ContactResult]:
            result = self._result(data, "SaveMultiContactJsonResult")
            responses = result.get("Responses")
            if not isinstance(responses, list) or len(responses) != len(contacts):
                got = len(responses) if isinstance(responses, list) else "no"
                raise _Retryable(f"{got} responses for {len(contacts)} contacts")
            out = []
            for contact, item in zip(contacts, responses, strict=True):
                item = item if isinstance(item, Mapping) else {}
                code = _int(item.get("StatusCode"))
                message = " ".join(str(item.get(k) or "") for k in ("Message", "MessageDetail")).strip()
                out.append(ContactResult(str(contact.get("Email", "")), code == 1, code, message[:500]))
            return out

        return self._call(SAVE_MULTI, body, check, call="SaveMultiContact")

    def save_contact(self, contact: Mapping[str, Any]) -> ContactResult:
        body = {"ProfileKey": self.profile_key, "Contact": dict(contact)}
        email = str(contact.get("Email", ""))

        def check(data: Any) -> ContactResult:
            if not isinstance(data, Mapping) or not isinstance(data.get("SaveContactJsonResult"), Mapping):
                raise _Retryable("unexpected SaveContact answer")
            result = data["SaveContactJsonResult"]
            code = _int(result.get("StatusCode"))
            message = " ".join(str(result.get(k) or "") for k in ("Message", "MessageDetail")).strip()
            return ContactResult(email, code == 1, code, message[:500])

        return self._call(SAVE_ONE, body, check, call="SaveContact")

    def list_full(self, email: str, *, max_attempts: int | None = None) -> list[dict[str, Any]]:
        """The stored contacts matching `email` (icomm answers a list; an empty list = not found)."""
        body = {"ProfileKey": self.profile_key, "Filters": {"Email": email}}

        def check(data: Any) -> list[dict[str, Any]]:
            result = data.get("ListContactsFullJsonResult") if isinstance(data, Mapping) else None
            if isinstance(result, list):
                return [dict(c) for c in result if isinstance(c, Mapping)]
            if result is None:
                return []
            self._result(data, "ListContactsFullJsonResult")  # raises on a StatusCode error
            data_list = result.get("Data") if isinstance(result, Mapping) else None
            return [dict(c) for c in data_list or [] if isinstance(c, Mapping)]

        return self._call(LIST_FULL, body, check, call="ListFull", max_attempts=max_attempts)

    def check_profile(self) -> None:
        """Read-only probe of key and ProfileKey (reference §1.3: verify before any write)."""
        if not self.profile_key:
            raise IcommError("ICOMM_PROFILE_KEY is not set")
        self.list_full(VERIFY_PROBE_EMAIL, max_attempts=min(self.max_attempts, 2))

    # -- internals ---------------------------------------------------------------------------------

    def _result(self, data: Any, key: str) -> Mapping[str, Any]:
        """The `<Call>JsonResult` object; a top-level StatusCode != 1 fails the whole call (retried)."""
        result = data.get(key) if isinstance(data, Mapping) else None
        if not isinstance(result, Mapping):
            raise _Retryable(f"answer without {key}")
        code = _int(result.get("StatusCode"))
        if code != 1:
            message = self.scrub(" ".join(str(result.get(k) or "") for k in ("Message", "MessageDetail")))
            raise _Retryable(f"StatusCode {code}: {message.strip()[:200]}")
        return result

    def _backoff(self, attempt: int) -> float:
        return http_core.full_jitter(attempt, self.backoff_base, self.backoff_max)

    def _call(
        self,
        path: str,
        body: dict[str, Any],
        check: Callable[[Any], Any],
        *,
        call: str,
        max_attempts: int | None = None,
    ) -> Any:
        attempts = http_core.Attempts(max_attempts or self.max_attempts, self.max_throttled)
        url = self.base_url + path
        payload = encode_body(body)
        last_status: int | None = None
        last_error = ""
        while True:
            attempts.start()
            self.limiter.acquire()
            self.stats.record_request(call)
            delay: float | None = None
            throttled = False
            try:
                try:
                    resp = self.session.post(
                        url, data=payload, headers=self._headers, timeout=self.timeout, allow_redirects=False
                    )
                except http_core.TRANSPORT_ERRORS as exc:
                    if isinstance(exc, requests.Timeout):
                        self.stats.record_timeout()
                    raise _Retryable(f"{type(exc).__name__}") from None
                last_status = resp.status_code
                if resp.status_code in (401, 403):
                    raise IcommAuthError(
                        f"icomm refused the API key on {call} (HTTP {resp.status_code}, auth scheme "
                        f"{self.auth_scheme!r}); check ICOMM_API_KEY and ICOMM_AUTH_SCHEME",
                        status=resp.status_code,
                        call=call,
                    )
                if resp.status_code in http_core.RETRY_STATUSES:
                    if resp.status_code == 429:
                        self.stats.record_throttled()
                    else:
                        self.stats.record_server_error()
                    retry_after = http_core.parse_retry_after(resp.headers.get("Retry-After"))
                    if retry_after is not None:
                        retry_after = min(retry_after, self.retry_after_max)
                        if resp.status_code == 429:
                            self.limiter.defer(retry_after)
                    raise _Retryable(f"HTTP {resp.status_code}", resp.status_code, retry_after)
                if not 200 <= resp.status_code < 300:
                    raise IcommError(
                        f"icomm answered HTTP {resp.status_code} on {call}",
                        status=resp.status_code,
                        call=call,
                    )
                try:
                    data = resp.json()
                except ValueError:
                    raise _Retryable("malformed JSON body", resp.status_code) from None
                return check(data)
            except _Retryable as exc:
                last_error = self.scrub(exc.reason)
                delay = exc.delay
                throttled = exc.status == 429
            if not attempts.retry(throttled):
                break
            if delay is None:
                delay = self._backoff(max(attempts.made, attempts.throttled_in_a_row))
            self.stats.record_retry()
            log.warning(
                "icomm %s attempt %d/%d failed (%s); retrying in %.2fs",
                call,
                max(attempts.made, 1),
                attempts.limit,
                last_error,
                delay,
            )
            self._sleep(delay)
        raise IcommRequestFailed(
            f"icomm {call} failed after {attempts.limit} attempt(s): {last_error}",
            status=last_status,
            call=call,
            attempts=attempts.limit,
            last_error=last_error,
        )


def verify_icomm(settings: IcommSettings, api_key: str | None) -> tuple[bool, str]:
    """For `vtex-pipeline verify`: is the key accepted and does the profile exist? Never writes.

    When the configured auth scheme is refused but the other one works, says so (icomm documents
    Basic, while its own client code sends the key raw).
    """
    if not api_key:
        return False, f"icomm: {settings.api_key_env} is not set"
    if not settings.profile_key:
        return False, "icomm: ICOMM_PROFILE_KEY is not set"
    other: Literal["basic", "raw"] = "raw" if settings.auth_scheme == "basic" else "basic"
    for scheme in (settings.auth_scheme, other):
        probe = settings.model_copy(
            update={"auth_scheme": scheme, "max_attempts": 2, "timeout": min(settings.timeout, 30.0)}
        )
        with IcommClient.from_settings(probe, api_key) as client:
            try:
                client.check_profile()
            except IcommAuthError:
                continue
            except IcommError as exc:
                msg = client.scrub(str(exc))
                if exc.status is not None and 200 <= exc.status < 300:  # answered, but with an error code
                    return False, f"icomm: key accepted but the profile check failed: {msg}"
                return False, f"icomm: cannot check the key at {settings.base_url}: {msg}"
        if scheme == settings.auth_scheme:
            return True, f"icomm: key accepted ({scheme} auth), profile found at {settings.base_url}"
        return False, (
            f"icomm: the key is refused with {settings.auth_scheme} auth but accepted with {scheme} auth; "
            f"set ICOMM_AUTH_SCHEME={scheme}"
        )
    return False, f"icomm: the API key in {settings.api_key_env} is refused (tried basic and raw auth)"
