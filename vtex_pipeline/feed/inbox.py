"""The feed's durable inbox: observations of the asset `<name>/orders_feed_events` in the Dagster instance.

The sensor stores each lot of events as one observation (its metadata holds the events) *before* it
commits their handles to VTEX, so an event is never lost between the two: a crash after the store and
before the commit only makes VTEX deliver it again (a duplicate, which the batch drops). The instance
is the deployment's PostgreSQL (or the local SQLite), written by the sensor without touching the
account's DuckDB file, which has one writer at a time. A micro-batch reads the observations after the
storage id its file has applied (`feed_state`), in storage order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.vtex.feed import FeedItem

EVENTS_KEY = "events"  # the observation's metadata entry holding the events
PAGE = 200  # observations per read


def events_asset_key(cfg: IntegrationConfig) -> dg.AssetKey:
    return dg.AssetKey([cfg.name, "orders_feed_events"])


def event_record(item: FeedItem, received_at: datetime) -> dict[str, Any]:
    """What the inbox keeps of an item: everything but the handle (useless once committed)."""
    return {
        "eventId": item.event_id,
        "orderId": item.order_id,
        "state": item.state,
        "lastState": item.last_state,
        "domain": item.domain,
        "currentChange": item.current_change.isoformat() if item.current_change else None,
        "receivedAt": received_at.isoformat(),
    }


def store_events(
    instance: dg.DagsterInstance,
    cfg: IntegrationConfig,
    events: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> int:
    """One observation holding `events` (written synchronously); returns its storage id."""
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=events_asset_key(cfg),
            metadata={
                EVENTS_KEY: dg.MetadataValue.json(events),
                "event_count": len(events),
                "orders": len({e["orderId"] for e in events}),
                **(extra or {}),
            },
        )
    )
    latest = latest_storage_id(instance, cfg)
    assert latest is not None  # just written
    return latest


def latest_storage_id(instance: dg.DagsterInstance, cfg: IntegrationConfig) -> int | None:
    """The storage id of the newest observation in the inbox (None: empty)."""
    records = instance.fetch_observations(events_asset_key(cfg), limit=1).records
    return records[0].storage_id if records else None


@dataclass(frozen=True)
class InboxRead:
    events: list[dict[str, Any]]
    upto: int  # the last storage id read (the watermark once applied)
    observations: int


def read_inbox(
    instance: dg.DagsterInstance, cfg: IntegrationConfig, after: int, limit: int = 5000
) -> InboxRead:
    """Events of the observations after storage id `after`, oldest first, up to about `limit` events
    (whole observations: the watermark stays on an observation boundary)."""
    events: list[dict[str, Any]] = []
    upto, seen, cursor = after, 0, None
    while len(events) < limit:
        result = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=events_asset_key(cfg), after_storage_id=after),
            limit=PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in result.records:
            obs = record.asset_observation
            entry = obs.metadata.get(EVENTS_KEY) if obs is not None else None
            if entry is not None:
                events.extend(entry.value or [])  # type: ignore[arg-type]
            upto, seen = record.storage_id, seen + 1
            if len(events) >= limit:
                break
        if len(events) >= limit or not result.has_more:
            break
        cursor = result.cursor
    return InboxRead(events, upto, seen)
