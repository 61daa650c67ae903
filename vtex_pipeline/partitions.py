"""Partitions and sync windows: assets are partitioned by UTC day (`daily_partitions`); the sync works
in 4-hour UTC windows (its watermarks and `synced_partitions` keys), mapped here from timestamps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

PARTITION_FMT = "%Y-%m-%d-%H:%M"
WINDOW = timedelta(hours=4)


def daily_partitions(start: date) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)


def window_start(ts: datetime) -> datetime:
    """Start of the 4-hour UTC window holding `ts` (compared at millisecond precision, as VTEX's index)."""
    ts = ts.astimezone(UTC)
    ts = ts.replace(microsecond=(ts.microsecond // 1000) * 1000)
    return ts.replace(hour=ts.hour - ts.hour % 4, minute=0, second=0, microsecond=0)


def partition_key_for(ts: datetime) -> str:
    return window_start(ts).strftime(PARTITION_FMT)


def end_of_day_utc(as_of: date, tz: str) -> datetime:
    """The instant day `as_of` ends in the store's time zone, in UTC."""
    local = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)
