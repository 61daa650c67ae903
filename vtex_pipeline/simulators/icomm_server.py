"""A local icomm contacts API: the three calls the sink uses, icomm's auth, per-contact errors, faults.

Built to reference §1.3: `SaveMultiContact` answers one `Responses[i]` per contact, an unknown
ProfileKey is a top-level StatusCode error, and a contact upsert only updates the custom fields sent.
Every accepted contact is appended to a JSON-lines file, so tests (and the demo) can count exactly
what reached "icomm", including replays.

Fault grammar (`POST /_sim/faults {"spec": ...}` or `faults=`): comma-separated `name=value`:
  fail_batches=F   share F of SaveMultiContact calls answer `fail_status` and write nothing
  fail_status=N    HTTP status of those failures (default 503)
  status_error=F   share F of SaveMultiContact calls answer 200 with top-level StatusCode 0, no write
  rate429=F        share F of all API calls answer 429 (with Retry-After when retry_after > 0)
  storm429=N       the next N API calls answer 429
  retry_after=S    Retry-After seconds on 429/503 answers (default 1; 0 = no header)
  lose_response=N  the next N SaveMultiContact calls are applied, then answered only after `hang`
                   seconds, with a 504 (the client times out: a write whose answer was lost)
  hang=S           seconds a lost response hangs (default 5)
  latency=S        seconds added to every API call
  seed=N           seed of the random draws (default 0)
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vtex_pipeline.simulators.faults import FaultKnobs

DEFAULT_SIM_API_KEY = "icomm-sim-KEY-0001"
EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
OK, ERROR = 1, 0
INVALID_EMAIL = 2
BLOCKED_EMAIL = 3

STAT_KEYS = (
    "requests",
    "contacts_received",
    "accepted",
    "rejected",
    "status_429",
    "failed_batches",
    "lost_responses",
    "unauthorized",
)


@dataclass
class IcommFaults(FaultKnobs):
    """The icomm simulator's faults (the grammar is in the module docstring)."""

    _what: ClassVar[str] = "icomm fault"
    fail_batches: float = 0.0
    fail_status: int = 503
    status_error: float = 0.0
    lose_response: int = 0
    hang: float = 5.0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)


class IcommState:
    """Contacts per profile (latest state), counters and the JSON-lines record; guarded by one lock."""

    def __init__(
        self,
        api_keys: set[str] | None,
        profiles: set[str] | None,
        out_path: str | Path | None,
        faults: IcommFaults,
        max_batch: int,
        blocked_emails: set[str] | None = None,
    ) -> None:
        self.blocked_emails = {e.lower() for e in blocked_emails or ()}
        self.api_keys = api_keys
        self.profiles = profiles
        self.out_path = Path(out_path) if out_path else None
        self.faults = faults
        self.max_batch = max_batch
        self.lock = threading.Lock()
        self.contacts: dict[str, dict[str, dict[str, Any]]] = {}
        self.stats: Counter[str] = Counter()
        if self.out_path is not None:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            self.out_path.touch()

    def authorized(self, header: str | None) -> bool:
        """Basic base64(key:) (password ignored, as icomm documents) or the raw key (as icomm's code sends)."""
        if not header:
            return False
        header = header.strip()
        candidates = {header}
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            candidates = {decoded.split(":", 1)[0]} if decoded else set()
        else:  # raw key; some clients append ":" or ":0"
            candidates.add(header.split(":", 1)[0])
        candidates.discard("")
        if self.api_keys is None:
            return bool(candidates)
        return bool(candidates & self.api_keys)

    def profile_ok(self, key: Any) -> bool:
        if not isinstance(key, str) or not key:
            return False
        return self.profiles is None or key in self.profiles

    def upsert(self, profile: str, contact: dict[str, Any], call: str) -> tuple[int, str]:
        """Apply one contact; returns (StatusCode, Message). Must hold the lock."""
        self.stats["contacts_received"] += 1
        email = contact.get("Email") if isinstance(contact, dict) else None
        if not isinstance(email, str) or not EMAIL_RE.match(email.strip()):
            self.stats["rejected"] += 1
            return INVALID_EMAIL, "Invalid email address"
        email = email.strip().lower()
        if email in self.blocked_emails:
            self.stats["rejected"] += 1
            return BLOCKED_EMAIL, "Email address is in the global bounce list"
        custom = contact.get("CustomFields") or []
        if not isinstance(custom, list) or not all(isinstance(c, dict) and "Key" in c for c in custom):
            self.stats["rejected"] += 1
            return ERROR, "CustomFields must be a list of {Key, Value}"
        stored = self.contacts.setdefault(profile, {}).setdefault(
            email, {"Email": email, "Status": "A", "CustomFields": {}}
        )
        for c in custom:
            value = c.get("Value")
            stored["CustomFields"][str(c["Key"])] = "" if value is None else str(value)
        self.stats["accepted"] += 1
        if self.out_path is not None:
            line = {
                "ts": datetime.now(UTC).isoformat(),
                "call": call,
                "profile_key": profile,
                "Email": email,
                "CustomFields": custom,
            }
            with self.out_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        return OK, ""

    def listing(self, profile: str, email: str | None) -> list[dict[str, Any]]:
        rows = self.contacts.get(profile, {})
        picked = [rows[email.strip().lower()]] if email and email.strip().lower() in rows else []
        if not email:
            picked = list(rows.values())
        return [
            {
                "Email": c["Email"],
                "Status": c["Status"],
                "CustomFields": [{"Key": k, "Value": v} for k, v in c["CustomFields"].items()],
            }
            for c in picked
        ]


def _result(name: str, code: int, message: str = "", **extra: Any) -> Response:
    return JSONResponse({name: {"StatusCode": code, "Message": message, "MessageDetail": "", **extra}})


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def create_icomm_app(
    api_keys: set[str] | None = None,
    profiles: set[str] | None = None,
    out_path: str | Path | None = None,
    faults: IcommFaults | str | None = None,
    *,
    max_batch: int = 1000,
    blocked_emails: set[str] | None = None,
) -> Starlette:
    """The icomm simulator. `api_keys`/`profiles` None accept any non-empty value; `blocked_emails` are
    refused per contact (as icomm's global bounce list would), to exercise the dead letter."""
    if isinstance(faults, str) or faults is None:
        faults = IcommFaults.parse(faults)
    state = IcommState(api_keys, profiles, out_path, faults, max_batch, blocked_emails)

    async def gate(request: Request, call: str) -> tuple[Response | None, dict[str, Any] | None, bool]:
        """Auth, throttling and generic faults. Returns (early answer, body, lose_this_response)."""
        f = state.faults
        with state.lock:
            state.stats["requests"] += 1
            state.stats[f"requests_{call}"] += 1
            if not state.authorized(request.headers.get("authorization")):
                state.stats["unauthorized"] += 1
                return (
                    JSONResponse({"Message": "Authorization has been denied for this request."}, 401),
                    None,
                    False,
                )
            throttle = False
            if f.storm429 > 0:
                f.storm429 -= 1
                throttle = True
            elif f.rate429 and f._rng.random() < f.rate429:
                throttle = True
            if throttle:
                state.stats["status_429"] += 1
                return JSONResponse({"Message": "Too many requests"}, 429, f.retry_headers()), None, False
            if call == "SaveMultiContact":
                if f.fail_batches and f._rng.random() < f.fail_batches:
                    state.stats[f"status_{f.fail_status}"] += 1
                    state.stats["failed_batches"] += 1
                    headers = f.retry_headers() if f.fail_status in (429, 503) else {}
                    return (
                        JSONResponse({"Message": "Service unavailable"}, f.fail_status, headers),
                        None,
                        False,
                    )
                if f.status_error and f._rng.random() < f.status_error:
                    state.stats["status_error_batches"] += 1
                    return (
                        _result("SaveMultiContactJsonResult", ERROR, "Internal error", Responses=[]),
                        None,
                        False,
                    )
            lose = False
            if call == "SaveMultiContact" and f.lose_response > 0:
                f.lose_response -= 1
                lose = True
            latency = f.latency
        if latency:
            await asyncio.sleep(latency)
        body = await _body(request)
        if body is None:
            return JSONResponse({"Message": "The request is invalid."}, 400), None, False
        return None, body, lose

    async def profile_gate(
        request: Request, call: str, name: str, **empty: Any
    ) -> tuple[Response | None, dict[str, Any], bool]:
        """`gate`, then the unknown-ProfileKey answer (`name` result, plus `empty`) every call starts with."""
        early, body, lose = await gate(request, call)
        if early is None and body is not None and not state.profile_ok(body.get("ProfileKey")):
            early = _result(name, ERROR, "ProfileKey not found", **empty)
        return early, body or {}, lose

    async def save_multi(request: Request) -> Response:
        name = "SaveMultiContactJsonResult"
        early, body, lose = await profile_gate(request, "SaveMultiContact", name, Responses=[])
        if early is not None:
            return early
        contacts = body.get("ContactList")
        if not isinstance(contacts, list):
            return _result(name, ERROR, "ContactList is required", Responses=[])
        if len(contacts) > state.max_batch:
            return _result(
                name, ERROR, f"ContactList holds more than {state.max_batch} contacts", Responses=[]
            )
        responses = []
        with state.lock:
            state.stats["batches_accepted"] += 1
            for contact in contacts:
                code, message = state.upsert(body["ProfileKey"], contact, "SaveMultiContact")
                email = contact.get("Email") if isinstance(contact, dict) else None
                responses.append(
                    {"StatusCode": code, "Message": message, "MessageDetail": "", "Data": {"Email": email}}
                )
        if lose:
            with state.lock:
                state.stats["lost_responses"] += 1
            await asyncio.sleep(state.faults.hang)
            return JSONResponse({"Message": "Gateway timeout"}, 504)
        return _result(name, OK, "", Responses=responses)

    async def save_one(request: Request) -> Response:
        name = "SaveContactJsonResult"
        early, body, _ = await profile_gate(request, "SaveContact", name)
        if early is not None:
            return early
        contact = body.get("Contact")
        with state.lock:
            code, message = state.upsert(
                body["ProfileKey"], contact if isinstance(contact, dict) else {}, "SaveContact"
            )
        email = contact.get("Email") if isinstance(contact, dict) else None
        return _result(name, code, message, Data={"Email": email, "Status": "A"} if code == OK else None)

    async def list_full(request: Request) -> Response:
        name = "ListContactsFullJsonResult"
        early, body, _ = await profile_gate(request, "ListFull", name)
        if early is not None:
            return early
        filters = body.get("Filters") if isinstance(body.get("Filters"), dict) else {}
        with state.lock:
            rows = state.listing(body["ProfileKey"], filters.get("Email"))
        return JSONResponse({name: rows})

    async def admin_contacts(request: Request) -> Response:
        profile = request.query_params.get("profile")
        with state.lock:
            keys = [profile] if profile else list(state.contacts)
            out = [row for p in keys for row in state.listing(p, None)]
        return JSONResponse(out)

    async def admin_stats(request: Request) -> Response:
        with state.lock:
            base = dict.fromkeys(STAT_KEYS, 0)
            return JSONResponse({"faults": state.faults.to_spec(), **base, **state.stats})

    async def admin_faults(request: Request) -> Response:
        body = await _body(request) or {}
        try:
            new = IcommFaults.parse(str(body.get("spec") or ""))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        with state.lock:
            state.faults = new
        return JSONResponse({"faults": new.to_spec()})

    async def admin_keys(request: Request) -> Response:
        """Replace the accepted API keys at run time (a key revoked in icomm): ``{"api_keys": [...]}``;
        an empty list refuses every key (401)."""
        body = await _body(request) or {}
        keys = body.get("api_keys")
        if not isinstance(keys, list):
            return JSONResponse({"error": 'body must be {"api_keys": [...]}'}, 400)
        with state.lock:
            state.api_keys = {str(k) for k in keys}
        return JSONResponse({"api_keys": len(keys)})

    async def admin_reset(request: Request) -> Response:
        with state.lock:
            state.stats.clear()
        return JSONResponse({"ok": True})

    routes = []
    for path, handler in (
        ("/Contacts/SaveMultiContact.Json", save_multi),
        ("/Contacts/SaveContact.Json", save_one),
        ("/Contacts/ListFull.Json", list_full),
    ):
        routes.append(Route(path, handler, methods=["POST"]))
        routes.append(Route(path + "/", handler, methods=["POST"]))
    routes += [
        Route("/_sim/contacts", admin_contacts, methods=["GET"]),
        Route("/_sim/stats", admin_stats, methods=["GET"]),
        Route("/_sim/faults", admin_faults, methods=["POST"]),
        Route("/_sim/keys", admin_keys, methods=["POST"]),
        Route("/_sim/reset-stats", admin_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.icomm = state
    return app


def serve_icomm(
    port: int,
    *,
    api_key: str | None = DEFAULT_SIM_API_KEY,
    profiles: set[str] | None = None,
    out_path: str | Path | None = None,
    faults: str | None = None,
) -> None:
    """Serve on 127.0.0.1:`port` until interrupted (`vtex-pipeline simulate icomm`)."""
    import uvicorn

    from vtex_pipeline.simulators.server import HOST

    app = create_icomm_app({api_key} if api_key else None, profiles, out_path, faults)
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)
