"""The sensor `<name>_orders_feed`: keep the feed configured, move its events into the inbox, request a batch.

Each tick (every VTEX_PIPELINE_FEED_INTERVAL_SECONDS, 30 s by default):
1. reads the feed's config (its queue depth and oldest age are the lag the UI shows) and creates it
   again when VTEX dropped it (no event for a whole retention period) or it differs;
2. reads lots of up to 10 items until a short lot (at most MAX_EVENTS_PER_TICK), stores them as one
   observation of `<name>/orders_feed_events`, and only then commits every handle, duplicates included
   (VTEX: an uncommitted item blocks the others);
3. requests one run of `<name>_orders_feed_batch` when the inbox holds events past what the last batch
   applied, unless a batch is already queued or running (it applies everything in the inbox when it
   starts, so events arriving meanwhile wait for the next one: at most one batch in flight, at most
   one run per tick, none when nothing changed), and backs off after failed batches.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg

from vtex_pipeline.config import IntegrationConfig
from vtex_pipeline.feed.assets import PROCESSED_UPTO, feed_asset_key
from vtex_pipeline.feed.inbox import event_record, latest_storage_id, store_events
from vtex_pipeline.feed.settings import (
    FEED_FILTER,
    MAX_EVENTS_PER_TICK,
    RETENTION,
    VISIBILITY_TIMEOUT,
    feed_interval,
    feed_vtex_settings,
)
from vtex_pipeline.schedules import IN_PROGRESS, k8s_run_tags
from vtex_pipeline.vtex.feed import FeedConfig, FeedMissing, OrdersFeed, dedupe
from vtex_pipeline.vtex.http import VtexClient

MAX_BACKOFF_SECONDS = 3600
UPTO_TAG = "vtex_pipeline/feed_upto"


def _configured(feed: OrdersFeed) -> tuple[FeedConfig | None, str]:
    """The config as VTEX holds it after making sure it is ours; and what was done."""
    current = feed.get_config()
    if (
        current is not None
        and current.filter.same_as(FEED_FILTER)
        and current.visibility_timeout == VISIBILITY_TIMEOUT
        and current.retention == RETENTION
    ):
        return current, "unchanged"
    feed.set_config(FEED_FILTER, VISIBILITY_TIMEOUT, RETENTION)
    return None, "created" if current is None else "updated"


def processed_upto(instance: dg.DagsterInstance, cfg: IntegrationConfig) -> int:
    """The inbox storage id the last successful batch applied (0: none yet)."""
    event = instance.get_latest_materialization_event(feed_asset_key(cfg))
    mat = event.asset_materialization if event is not None else None
    value = mat.metadata.get(PROCESSED_UPTO) if mat is not None else None
    return int(value.value) if value is not None else 0  # type: ignore[arg-type]


def _backoff(instance: dg.DagsterInstance, job_name: str, interval: int) -> str | None:
    """Why to wait before another batch after failures (doubling per failure in a row), or None."""
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=8)
    failures = 0
    for r in records:
        if r.dagster_run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            break
        failures += 1
    if not failures:
        return None
    wait = min(interval * 2**failures, MAX_BACKOFF_SECONDS)
    ended = records[0].end_time or records[0].create_timestamp.timestamp()
    left = ended + wait - datetime.now(UTC).timestamp()
    if left <= 0:
        return None
    return (
        f"the last {failures} feed batch(es) failed (run {records[0].dagster_run.run_id}): next attempt in "
        f"{left:.0f} s; the events are kept in the inbox"
    )


def orders_feed_sensor(cfg: IntegrationConfig, job: dg.JobDefinition) -> dg.SensorDefinition:
    interval = feed_interval()

    @dg.sensor(
        name=f"{cfg.name}_orders_feed",
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Reads VTEX's Orders Feed v3 with the feed's own key, stores the events in the inbox "
            f"({cfg.name}/orders_feed_events) before committing them, and requests a batch of "
            f"{cfg.name}/feed_contacts when there are events to apply."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext):
        settings = feed_vtex_settings(cfg)
        if settings is None:
            return dg.SkipReason(
                f"{cfg.feed_app_key_env} / {cfg.feed_app_token_env} are not set: the feed path is off"
            )
        instance = context.instance
        cursor = json.loads(context.cursor) if context.cursor else {}
        with VtexClient(settings) as client:
            feed = OrdersFeed(client)
            config, outcome = _configured(feed)
            if outcome != "unchanged":
                if cursor.get("configured"):
                    context.log.warning(
                        f"the Orders Feed of {cfg.feed_app_key_env} was {'gone' if outcome == 'created' else 'changed'} "
                        "(VTEX drops a feed after a retention period without events) and is configured "
                        "again: order changes in between reach the profile with the next sync"
                    )
                else:
                    context.log.info(f"Orders Feed {outcome} for {cfg.feed_app_key_env}")
                cursor["configured"] = True
            try:
                items = feed.read_up_to(MAX_EVENTS_PER_TICK)
            except FeedMissing:  # dropped between the two calls: next tick re-creates it
                items = []
            if items:
                now = datetime.now(UTC)
                events = [event_record(i, now) for i in dedupe(items)]
                queue = {}
                if config is not None:
                    queue = {
                        "queue/quantity": config.quantity,
                        "queue/oldest_age_seconds": config.oldest_age_seconds,
                    }
                store_events(instance, cfg, events, {k: v for k, v in queue.items() if v is not None})
                feed.commit(i.handle for i in items)  # stored first: an event is never lost in between
        latest = latest_storage_id(instance, cfg) or 0
        done = processed_upto(instance, cfg)
        if latest <= done:
            return dg.SensorResult(skip_reason="no new feed events", cursor=json.dumps(cursor))
        if instance.get_run_records(dg.RunsFilter(job_name=job.name, statuses=IN_PROGRESS), limit=1):
            return dg.SensorResult(
                skip_reason="a feed batch is queued or running; the new events go into the next one",
                cursor=json.dumps(cursor),
            )
        why = _backoff(instance, job.name, interval)
        if why:
            return dg.SensorResult(skip_reason=why, cursor=json.dumps(cursor))
        return dg.SensorResult(
            run_requests=[dg.RunRequest(tags={UPTO_TAG: str(latest), **k8s_run_tags(cfg)})],
            cursor=json.dumps(cursor),
        )

    return _sensor
