from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containai.domain import age
from containai.domain.age import format_duration, parse_age, parse_engine_time
from containai.domain.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
        ("30d", timedelta(days=30)),
        ("0s", timedelta(0)),
        ("0d", timedelta(0)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("3d 4h 12m", timedelta(days=3, hours=4, minutes=12)),
        ("12h1d", timedelta(days=1, hours=12)),
        ("007d", timedelta(days=7)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_age_ok(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "7",
        "d",
        "7x",
        "-7d",
        "+7d",
        "7D",
        "7 d",
        "1.5d",
        "7dd",
        "d7",
        "1d  2h",
        "7days",
        "٧d",
        "1d\n2h",
        "99999999999999999999d",
        "2000000000000w",
        "9" * 5000 + "s",
    ],
)
def test_parse_age_bad(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_age(text)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message
    assert message.startswith("invalid age ")
    assert "s, m, h, d or w" in message


def test_parse_age_message() -> None:
    with pytest.raises(UsageError) as info:
        parse_age("7x")
    assert str(info.value) == (
        "invalid age '7x': use a number with a unit s, m, h, d or w (e.g. 7d, 36h, 1d12h)"
    )


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (-5, "0s"),
        (45, "45s"),
        (59.99, "59s"),
        (60, "1m"),
        (90, "1m 30s"),
        (3600, "1h"),
        (3605, "1h 0m 5s"),
        (7200, "2h"),
        (3 * 86400 + 4 * 3600 + 12 * 60, "3d 4h 12m"),
        (3 * 86400 + 4 * 3600 + 12 * 60 + 59, "3d 4h 12m"),  # at most three units
        (86400 + 5, "1d"),  # the seconds fall outside the three-unit window
        (86400 + 60, "1d 0h 1m"),
        (30 * 86400, "30d"),
        (400 * 86400 + 3600, "400d 1h"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), float("-inf")])
def test_format_duration_rejects_non_finite(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


@given(
    days=st.integers(0, 10_000),
    hours=st.integers(0, 23),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
)
def test_format_then_parse_roundtrips(days: int, hours: int, minutes: int, seconds: int) -> None:
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    text = format_duration(total)
    assert len(text.split()) <= 3
    parsed = parse_age(text).total_seconds()
    # exact when the value fits in three units, otherwise floored to the last unit shown
    assert parsed <= total
    if days == 0 or seconds == 0:
        assert parsed == total
    else:
        assert total - parsed < 60


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_format_duration_shape(seconds: float) -> None:
    text = format_duration(seconds)
    parts = text.split()
    assert 1 <= len(parts) <= 3
    assert all(p[:-1].isdigit() and p[-1] in "dhms" for p in parts)
    assert not (len(parts) > 1 and parts[-1][:-1] == "0")
    assert parse_age(text).total_seconds() <= seconds


@given(st.integers(0, 10**6), st.sampled_from(list("smhdw")))
def test_parse_age_single_unit(number: int, unit: str) -> None:
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_age(f"{number}{unit}") == timedelta(seconds=number * size)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T08:34:31Z", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        ("2026-11-27T08:34:31.5Z", datetime(2026, 11, 27, 8, 34, 31, 500_000, tzinfo=UTC)),
        (
            "2026-11-27T08:34:31.123456789Z",
            datetime(2026, 11, 27, 8, 34, 31, 123_456, tzinfo=UTC),
        ),
        (
            "2026-11-27T08:34:31.999999999+01:00",
            datetime(2026, 11, 27, 7, 34, 31, 999_999, tzinfo=UTC),
        ),
        ("2026-11-27T08:34:31-05:30", datetime(2026, 11, 27, 14, 4, 31, tzinfo=UTC)),
        ("2026-11-27T08:34:31z", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        ("2026-11-27 08:34:31 +0000 UTC", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        ("2026-11-27 09:34:31 +0100 CET", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        ("2026-11-27 05:34:31 -0300 -03", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        (
            "2026-11-27 08:34:31.123456789 +0000 UTC",
            datetime(2026, 11, 27, 8, 34, 31, 123_456, tzinfo=UTC),
        ),
        ("2026-11-27 08:34:31 +0000", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        ("  2026-11-27T08:34:31Z\n", datetime(2026, 11, 27, 8, 34, 31, tzinfo=UTC)),
        ("2026-12-31T23:30:00-01:00", datetime(2027, 1, 1, 0, 30, tzinfo=UTC)),
    ],
)
def test_parse_engine_time(text: str, expected: datetime) -> None:
    parsed = parse_engine_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0001-01-01T00:00:00Z",
        "0001-01-01 00:00:00 +0000 UTC",
        "0001-01-01T00:00:00+01:00",  # before the start of the calendar in UTC
        "garbage",
        "2026-11-27",
        "2026-11-27T08:34:31",  # no zone: ambiguous
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T08:34:60Z",
        "2026-11-27T08:34:31.1234567890Z",
        "2026-11-27T08:34:31+25:00",
        "2026-11-27T08:34:31+01:60",
        "2026-11-27T08:34:31.Z",
        "N/A",
    ],
)
def test_parse_engine_time_unknown(text: str) -> None:
    assert parse_engine_time(text) is None


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    nanos=st.integers(0, 999),
    offset_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
    digits=st.integers(1, 9),
)
def test_parse_engine_time_property(
    moment: datetime, nanos: int, offset_minutes: int, digits: int
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.astimezone(zone)
    fraction = f"{local.microsecond:06d}{nanos:03d}"[:digits]
    sign = "-" if offset_minutes < 0 else "+"
    hh, mm = divmod(abs(offset_minutes), 60)
    rfc = f"{local:%Y-%m-%dT%H:%M:%S}.{fraction}{sign}{hh:02d}:{mm:02d}"
    go = f"{local:%Y-%m-%d %H:%M:%S}.{fraction} {sign}{hh:02d}{mm:02d} XYZ"
    expected = moment.replace(microsecond=int(fraction.ljust(6, "0")[:6]))
    for text in (rfc, go):
        parsed = parse_engine_time(text)
        assert parsed == expected, text
        assert parsed is not None and parsed.tzinfo == UTC


# ---- the regex-free reading of Docker's common timestamp shapes -------------------
def _fast_reader_agrees(text: str) -> re.Match[str] | None:
    """What the fast reader accepts, the pattern reads the same way; the pattern's match."""
    fields = age._engine_time_fields(text)
    match = re.fullmatch(age._ENGINE_TIME_RE, text)
    if fields is not None:
        assert match is not None
        assert fields == (
            match.group("date"),
            match.group("time"),
            match.group("frac") or "",
            match.group("rfc") or match.group("go") or "+0000",
        )
    return match


_PIECES = st.sampled_from(
    [
        "2026",
        "-",
        "11",
        "27",
        "T",
        "t",
        " ",
        "08",
        ":",
        "34",
        "31",
        ".",
        "123456789",
        "1",
        "1234567890",
        "Z",
        "z",
        "+0000",
        "-0130",
        "+01:00",
        "UTC",
        "CET",
        "+00",
        "x",
        "²",
        "0",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=14))
def test_the_fast_reader_agrees_with_the_pattern(pieces: list[str]) -> None:
    _fast_reader_agrees("".join(pieces))


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T08:34:31.123456789Z",
        "2026-11-27T08:34:31Z",
        "2026-11-27 08:34:31 +0000 UTC",
        "2026-11-27 08:34:31 -0130",
    ],
)
def test_docker_s_usual_shapes_take_the_fast_reader(text: str) -> None:
    assert age._engine_time_fields(text) is not None


_DIGITISH = st.text(alphabet="0123456789²x", min_size=1, max_size=5)
_SHAPED = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, tail: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{tail}",
    _DIGITISH,
    _DIGITISH,
    _DIGITISH,
    st.sampled_from(["T", "t", " ", "_"]),
    _DIGITISH,
    _DIGITISH,
    _DIGITISH,
    st.sampled_from(["", ".", ".1", ".123456789", ".1234567890", ".x"]),
    st.sampled_from(
        [
            "Z",
            "z",
            "",
            " +0000",
            " +0000 UTC",
            " -0130 CET",
            " +00",
            " +0000 ",
            " +0000 U!C",
            "+01:00",
            " +12345",
            "Zx",
        ]
    ),
)


@settings(max_examples=3000, deadline=None)
@given(_SHAPED)
def test_the_fast_reader_agrees_with_the_pattern_on_near_misses(text: str) -> None:
    match = _fast_reader_agrees(text)
    if match is not None and age._engine_time_fields(text) is None:
        assert match.group("rfc") is not None  # declined: only the rarer shapes
