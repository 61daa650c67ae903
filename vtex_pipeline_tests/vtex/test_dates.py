"""VTEX timestamps: 7 fractional digits, offsets, Z, naive-as-UTC, millisecond filter strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vtex_pipeline.vtex.dates import format_filter_datetime, parse_vtex_datetime, truncate_ms
from vtex_pipeline.vtex.errors import RecordError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-03-19T21:44:01.4199691Z", datetime(2025, 3, 19, 21, 44, 1, 419969, tzinfo=UTC)),
        ("2024-02-04T20:09:43.899958+00:00", datetime(2024, 2, 4, 20, 9, 43, 899958, tzinfo=UTC)),
        ("2024-02-06T20:46:11.7010747+00:00", datetime(2024, 2, 6, 20, 46, 11, 701074, tzinfo=UTC)),
        ("2019-02-04T10:29:11+00:00", datetime(2019, 2, 4, 10, 29, 11, tzinfo=UTC)),
        ("2022-01-01T02:00:00.000Z", datetime(2022, 1, 1, 2, 0, tzinfo=UTC)),
        ("2022-01-01T02:00:00", datetime(2022, 1, 1, 2, 0, tzinfo=UTC)),  # no offset = UTC
        ("2022-01-01T02:00:00.5", datetime(2022, 1, 1, 2, 0, 0, 500000, tzinfo=UTC)),
        ("2022-01-01T02:00:00-03:00", datetime(2022, 1, 1, 5, 0, tzinfo=UTC)),
        ("2022-01-01T23:30:00.123+05:30", datetime(2022, 1, 1, 18, 0, 0, 123000, tzinfo=UTC)),
        ("2022-01-01T02:00:00-0300", datetime(2022, 1, 1, 5, 0, tzinfo=UTC)),
        ("2022-01-01T02:00:00.123456789Z", datetime(2022, 1, 1, 2, 0, 0, 123456, tzinfo=UTC)),
        ("2016-09-14T19:21:01.3163733Z", datetime(2016, 9, 14, 19, 21, 1, 316373, tzinfo=UTC)),
        ("2022-01-01", datetime(2022, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_vtex_datetime(raw: str, expected: datetime) -> None:
    parsed = parse_vtex_datetime(raw)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "garbage",
        "2022-13-01T00:00:00Z",
        "2022-01-01T25:00:00Z",
        "01/02/2022",
        "2022-01-01T00:00:00+99:00",
    ],
)
def test_parse_rejects_garbage(raw: str) -> None:
    with pytest.raises(RecordError):
        parse_vtex_datetime(raw)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(RecordError):
        parse_vtex_datetime(None)  # type: ignore[arg-type]
    with pytest.raises(RecordError):
        parse_vtex_datetime(1700000000)  # type: ignore[arg-type]


def test_format_filter_datetime_truncates_to_ms_utc() -> None:
    dt = datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert format_filter_datetime(dt) == "2024-01-31T23:59:59.999Z"
    tz = timezone(timedelta(hours=-3))
    assert format_filter_datetime(datetime(2024, 1, 1, 21, 0, tzinfo=tz)) == "2024-01-02T00:00:00.000Z"
    assert (
        format_filter_datetime(datetime(2024, 1, 1, 0, 0, 0, 1500)) == "2024-01-01T00:00:00.001Z"
    )  # naive = UTC
    assert truncate_ms(dt) == datetime(2024, 1, 31, 23, 59, 59, 999000, tzinfo=UTC)


aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]),
)


@given(aware)
def test_format_parse_round_trip_at_ms(dt: datetime) -> None:
    text = format_filter_datetime(dt)
    assert len(text) == 24 and text.endswith("Z")
    assert parse_vtex_datetime(text) == truncate_ms(dt.astimezone(UTC))


@given(aware, st.integers(min_value=0, max_value=9_999_999), st.integers(min_value=1, max_value=7))
def test_parse_any_fraction_width(dt: datetime, frac: int, width: int) -> None:
    digits = str(frac).zfill(7)[:width]
    base = dt.astimezone(UTC).replace(microsecond=0)
    parsed = parse_vtex_datetime(base.strftime("%Y-%m-%dT%H:%M:%S") + "." + digits + "+00:00")
    assert parsed == base.replace(microsecond=int(digits[:6].ljust(6, "0")))
