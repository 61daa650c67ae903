"""VTEX timestamps.

VTEX sends up to 7 fractional digits (`2025-03-19T21:44:01.4199691Z`), `Z` or `+00:00` offsets, and
sometimes no offset at all (meaning UTC). Filters (`f_creationDate=creationDate:[A TO B]`) want
millisecond ISO UTC strings. Everything here returns timezone-aware UTC datetimes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from vtex_pipeline.vtex.errors import RecordError

_DATETIME_RE = re.compile(
    r"""^\s*
    (?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
    (?:[Tt\ ]
        (?P<h>\d{2}):(?P<mi>\d{2})
        (?::(?P<s>\d{2})(?:[.,](?P<frac>\d+))?)?
    )?
    \s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?
    \s*$""",
    re.VERBOSE,
)


def parse_vtex_datetime(s: str) -> datetime:
    """Parse a VTEX timestamp into an aware UTC datetime (fraction beyond microseconds is truncated).

    Raises RecordError on anything that is not an ISO-like timestamp, so callers can reject the record.
    """
    if not isinstance(s, str):
        raise RecordError(f"expected a timestamp string, got {type(s).__name__}")
    m = _DATETIME_RE.match(s)
    if not m:
        raise RecordError(f"unparsable timestamp {s[:60]!r}")
    frac = (m.group("frac") or "")[:6].ljust(6, "0")
    try:
        dt = datetime(
            int(m.group("y")),
            int(m.group("mo")),
            int(m.group("d")),
            int(m.group("h") or 0),
            int(m.group("mi") or 0),
            int(m.group("s") or 0),
            int(frac),
        )
    except ValueError as exc:
        raise RecordError(f"invalid timestamp {s[:60]!r}: {exc}") from None
    tz = m.group("tz")
    offset = timedelta(0)
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        hours = int(digits[:2])
        minutes = int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            raise RecordError(f"invalid UTC offset in {s[:60]!r}")
        offset = sign * timedelta(hours=hours, minutes=minutes)
    try:
        return (dt - offset).replace(tzinfo=UTC)
    except OverflowError:
        raise RecordError(f"timestamp out of range {s[:60]!r}") from None


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC (VTEX semantics); aware ones are converted."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def truncate_ms(dt: datetime) -> datetime:
    """Drop sub-millisecond precision (VTEX filters and the OMS index work in milliseconds)."""
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)


def format_filter_datetime(dt: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, truncating (never rounding up past the given instant)."""
    dt = truncate_ms(as_utc(dt))
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}."
        f"{dt.microsecond // 1000:03d}Z"
    )
