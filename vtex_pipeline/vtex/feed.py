"""Orders Feed v3 client: keep the feed configured, read lots, commit handles, check the feed key.

VTEX allows one feed per app key, so the feed has a key of its own (`VTEX_FEED_APP_KEY` /
`VTEX_FEED_APP_TOKEN`, or the variables an integrations file names with `feed_app_key_env` /
`feed_app_token_env`). Everything goes through `VtexClient`: the same pacing, retries on 429/5xx and
secret scrubbing as the batch sync. Delivery is at least once and unordered, so callers de-duplicate
(`dedupe`, on eventId) and must store items before committing them. No Dagster here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from vtex_pipeline.vtex.dates import parse_vtex_datetime
from vtex_pipeline.vtex.errors import (
    RecordError,
    VtexAuthError,
    VtexError,
    VtexNotFound,
    VtexPermissionError,
)
from vtex_pipeline.vtex.http import VtexClient, VtexSettings
from vtex_pipeline.vtex.permissions import FEED

log = logging.getLogger("vtex_pipeline.vtex")

FEED_PATH = "/api/orders/feed"
CONFIG_PATH = "/api/orders/feed/config"
MAX_LOT = 10  # "Maximum accepted value is 10"
COMMIT_BATCH = 10  # VTEX documents no limit; vtexpy sends at most 10, so do we
RETENTION_MIN = 345_600  # 4 days
RETENTION_MAX = 1_209_600  # 14 days
FEED_KEY_VAR, FEED_TOKEN_VAR = "VTEX_FEED_APP_KEY", "VTEX_FEED_APP_TOKEN"
DEFAULT_STATUSES = ("order-created", "payment-approved", "invoiced", "canceled")
PROBE_MAX_ATTEMPTS = 2

EnsureOutcome = Literal["created", "updated", "unchanged"]


class FeedMissing(VtexNotFound):
    """404 on the feed: no config for this key (never made, deleted, or dropped after a quiet retention)."""


def _grant_hint(key_vars: str) -> str:
    return (
        f"give the feed key ({key_vars}) a role of its own with {FEED.product} / {FEED.resource} in "
        "VTEX Admin > Account settings > User roles (no predefined role has it)"
    )


class FeedPermissionError(VtexPermissionError):
    """403 on a feed route: the feed key's role lacks "Feed v3 and Hook"."""

    def __init__(self, *, method: str, path: str, key_vars: str, call: str | None = None) -> None:
        super().__init__(method=method, path=path, permission=FEED, call=call)
        self.message = f"VTEX refused {method} {path} (403): {_grant_hint(key_vars)}"
        self.args = (self.message,)


@dataclass(frozen=True)
class FeedFilter:
    """`FromWorkflow` (status list; None = every status) or `FromOrders` (JSONata expression)."""

    type: Literal["FromWorkflow", "FromOrders"] = "FromWorkflow"
    statuses: tuple[str, ...] | None = DEFAULT_STATUSES
    expression: str | None = None
    disable_single_fire: bool = False

    @classmethod
    def workflow(cls, statuses: Iterable[str] = DEFAULT_STATUSES) -> FeedFilter:
        return cls("FromWorkflow", tuple(statuses), None, False)

    @classmethod
    def orders(cls, expression: str, *, disable_single_fire: bool = False) -> FeedFilter:
        return cls("FromOrders", None, expression, disable_single_fire)

    def to_json(self) -> dict[str, Any]:
        """As given: a filter with both a status list and an expression is sent as such (VTEX: 409)."""
        out: dict[str, Any] = {"type": self.type, "disableSingleFire": self.disable_single_fire}
        if self.statuses is not None:
            out["status"] = list(self.statuses)
        if self.expression is not None:
            out["expression"] = self.expression
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeedFilter:
        if data.get("type") == "FromOrders":
            return cls.orders(
                str(data.get("expression") or ""), disable_single_fire=bool(data.get("disableSingleFire"))
            )
        status = data.get("status")
        return cls(
            "FromWorkflow",
            tuple(status) if isinstance(status, list) else None,
            None,
            bool(data.get("disableSingleFire")),
        )

    def same_as(self, other: FeedFilter) -> bool:
        """Equal for VTEX's purposes (status order does not matter)."""
        mine = None if self.statuses is None else sorted(self.statuses)
        theirs = None if other.statuses is None else sorted(other.statuses)
        return (self.type, mine, self.expression, self.disable_single_fire) == (
            other.type,
            theirs,
            other.expression,
            other.disable_single_fire,
        )


@dataclass(frozen=True)
class FeedConfig:
    """What `GET /api/orders/feed/config` says: the config plus queue depth and age (lag metrics)."""

    filter: FeedFilter
    visibility_timeout: int
    retention: int
    quantity: int | None = None
    oldest_age_seconds: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeedConfig:
        queue = data.get("queue") if isinstance(data.get("queue"), dict) else {}
        retention = queue.get("MessageRetentionPeriodInSeconds", queue.get("messageRetentionPeriodInSeconds"))
        age = data.get(
            "approximateAgeOfOldestMessageInSeconds", data.get("aproximateAgeOfOldestMessageInSeconds")
        )
        quantity = data.get("quantity")
        return cls(
            filter=FeedFilter.from_json(data.get("filter") if isinstance(data.get("filter"), dict) else {}),
            visibility_timeout=int(queue.get("visibilityTimeoutInSeconds") or 0),
            retention=int(retention or 0),
            quantity=int(quantity) if isinstance(quantity, int | float) else None,
            oldest_age_seconds=float(age) if isinstance(age, int | float) else None,
        )


@dataclass(frozen=True)
class FeedItem:
    """One feed event. `handle` changes at every delivery: commit the one you received."""

    event_id: str
    handle: str
    domain: str
    state: str
    last_state: str
    order_id: str
    last_change: datetime | None
    current_change: datetime | None

    @classmethod
    def from_json(cls, data: Any) -> FeedItem:
        """Raises RecordError when a required field is missing (the caller decides what to do)."""
        if not isinstance(data, dict):
            raise RecordError(f"feed item is not an object: {type(data).__name__}")
        for name in ("eventId", "handle", "orderId", "state"):
            if not data.get(name):
                raise RecordError(f"feed item without {name}")

        def when(name: str) -> datetime | None:
            value = data.get(name)
            return parse_vtex_datetime(value) if value else None

        return cls(
            event_id=str(data["eventId"]),
            handle=str(data["handle"]),
            domain=str(data.get("domain") or ""),
            state=str(data["state"]),
            last_state=str(data.get("lastState") or ""),
            order_id=str(data["orderId"]),
            last_change=when("lastChange"),
            current_change=when("currentChange"),
        )


def dedupe(items: Iterable[FeedItem]) -> list[FeedItem]:
    """First delivery of each eventId, in arrival order (at-least-once delivery repeats events)."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.event_id not in seen:
            seen.add(item.event_id)
            out.append(item)
    return out


def feed_settings(
    base: VtexSettings,
    environ: Mapping[str, str],
    *,
    key_var: str = FEED_KEY_VAR,
    token_var: str = FEED_TOKEN_VAR,
) -> VtexSettings | None:
    """The account's settings with the feed's own key, or None when the feed path is off (unset)."""
    key = (environ.get(key_var) or "").strip()
    token = (environ.get(token_var) or "").strip()
    if not key or not token:
        return None
    return base.replace(app_key=key, app_token=token, credential_vars=f"{key_var} / {token_var}")


def config_body(flt: FeedFilter, visibility_timeout: int, retention: int) -> dict[str, Any]:
    """The `POST /api/orders/feed/config` body, with the capital-M retention field the API requires."""
    if visibility_timeout < 0:
        raise ValueError("visibility_timeout must be >= 0 seconds")
    if not RETENTION_MIN <= retention <= RETENTION_MAX:
        raise ValueError(f"retention must be {RETENTION_MIN}..{RETENTION_MAX} seconds (4 to 14 days)")
    return {
        "filter": flt.to_json(),
        "queue": {
            "visibilityTimeoutInSeconds": int(visibility_timeout),
            "MessageRetentionPeriodInSeconds": int(retention),
        },
    }


class OrdersFeed:
    """The feed of the key `client` was built with (one feed per app key)."""

    def __init__(self, client: VtexClient) -> None:
        self.client = client

    @property
    def _key_vars(self) -> str:
        return self.client.settings.credential_vars

    def _call(self, method: str, path: str, call: str, **kw: Any) -> Any:
        try:
            if method == "GET":
                return self.client.get_json(path, call=call, **kw)
            return self.client.request(method, path, call=call, **kw)
        except VtexPermissionError as exc:
            raise FeedPermissionError(method=method, path=path, key_vars=self._key_vars, call=call) from exc
        except VtexNotFound as exc:
            raise FeedMissing(
                f"no Orders Feed configured for this key ({method} {path} -> 404): it was never created, "
                "was deleted, or VTEX dropped it after a retention period without events",
                status=404,
                method=method,
                path=path,
                call=call,
            ) from exc

    # -- config
    def get_config(self) -> FeedConfig | None:
        """The current config, or None when the key has none (404)."""
        try:
            data = self._call("GET", CONFIG_PATH, "feed.get_config")
        except FeedMissing:
            return None
        if not isinstance(data, dict):
            raise VtexError("Orders Feed config: unexpected body (not an object)")
        return FeedConfig.from_json(data)

    def set_config(self, flt: FeedFilter, visibility_timeout: int, retention: int) -> None:
        """Create or replace the config (queued items stay). 409 means both filter types were sent."""
        body = config_body(flt, visibility_timeout, retention)
        self._call("POST", CONFIG_PATH, "feed.set_config", json_body=body)

    def delete_config(self) -> bool:
        """Delete the config; False when there was none."""
        try:
            self._call("DELETE", CONFIG_PATH, "feed.delete_config")
        except FeedMissing:
            return False
        return True

    def ensure_config(
        self, flt: FeedFilter, visibility_timeout: int, retention: int = RETENTION_MAX
    ) -> EnsureOutcome:
        """Make the feed exist as asked: create it (also after VTEX dropped it), replace it if it
        differs, else leave it alone (a needless re-POST would do no harm, but costs a call)."""
        current = self.get_config()
        if current is None:
            self.set_config(flt, visibility_timeout, retention)
            log.info("Orders Feed config created")
            return "created"
        if (
            current.filter.same_as(flt)
            and current.visibility_timeout == visibility_timeout
            and current.retention == retention
        ):
            return "unchanged"
        self.set_config(flt, visibility_timeout, retention)
        log.info("Orders Feed config replaced")
        return "updated"

    # -- items
    def read(self, maxlot: int = MAX_LOT) -> list[FeedItem]:
        """One lot (maxlot clamped to 1..10). Items hide for the visibility timeout until committed.

        Raises FeedMissing when the key has no feed (call ensure_config and read again). An item
        missing a required field is skipped with a warning; its handle is unknown so it cannot be
        committed, and VTEX will deliver it again.
        """
        lot = max(1, min(int(maxlot), MAX_LOT))
        data = self._call("GET", FEED_PATH, "feed.read", params={"maxlot": lot})
        if not isinstance(data, list):
            raise VtexError("Orders Feed: unexpected body (not an array)")
        items = []
        for raw in data:
            try:
                items.append(FeedItem.from_json(raw))
            except RecordError as exc:
                log.warning("Orders Feed item skipped: %s", exc.reason)
        return items

    def read_up_to(self, max_items: int) -> list[FeedItem]:
        """Lots of 10 until a short lot or `max_items` (VTEX's own consumer loops while lots are full).
        Each lot's items are hidden for the visibility timeout, so the lots do not overlap."""
        items: list[FeedItem] = []
        while len(items) < max_items:
            lot = self.read(min(MAX_LOT, max_items - len(items)))
            items.extend(lot)
            if len(lot) < MAX_LOT:
                break
        return items

    def commit(self, handles: Iterable[str]) -> int:
        """Commit handles in batches of 10; returns how many were sent. A stale handle (the item was
        delivered again since) is accepted by VTEX and does nothing: the item comes back."""
        todo = list(dict.fromkeys(h for h in handles if h))
        for i in range(0, len(todo), COMMIT_BATCH):
            self._call("POST", FEED_PATH, "feed.commit", json_body={"handles": todo[i : i + COMMIT_BATCH]})
        return len(todo)


class FeedCheck(NamedTuple):
    """Result of `check_feed_permission`: ok, and a message for the operator (no secrets)."""

    ok: bool
    message: str


def check_feed_permission(client: VtexClient, *, max_attempts: int = PROBE_MAX_ATTEMPTS) -> FeedCheck:
    """`verify`'s probe for the feed key: GET the feed config. 200 and 404 both prove the permission
    (404 only means no feed yet; the pipeline creates it); 403 names the missing resource."""
    key_vars = client.settings.credential_vars
    try:
        data = client.get_json(CONFIG_PATH, call="verify.feed_config", max_attempts=max_attempts)
    except VtexAuthError as exc:
        return FeedCheck(False, str(exc))
    except VtexPermissionError:
        return FeedCheck(False, f"the feed key lacks {FEED.label}: {_grant_hint(key_vars)}")
    except VtexNotFound:
        return FeedCheck(True, f"{FEED.label}: allowed; no feed configured yet (the pipeline creates it)")
    except VtexError as exc:
        return FeedCheck(False, f"could not check {FEED.label}: {exc}")
    cfg = FeedConfig.from_json(data if isinstance(data, dict) else {})
    depth = "" if cfg.quantity is None else f", {cfg.quantity} queued"
    age = "" if cfg.oldest_age_seconds is None else f", oldest {cfg.oldest_age_seconds:.0f} s"
    return FeedCheck(True, f"{FEED.label}: allowed; feed configured ({cfg.filter.type}{depth}{age})")
