"""Ages and durations (``cai gc --age``, uptime in ``cai status``) and engine timestamps."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

from containai.domain.errors import UsageError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from typing import Final

UNIT_SECONDS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
AGE_MAX: Final = timedelta(days=999_999_999)  # datetime.timedelta.max, whole days

# Patterns as text: compiled (and cached by `re`) at first use, not at import (cai list).
_AGE_RE: Final = r"(?:[0-9]+[smhdw] ?)*[0-9]+[smhdw]"
_AGE_PART_RE: Final = r"([0-9]+)([smhdw])"
_AGE_HINT: Final = "use a number with a unit s, m, h, d or w (e.g. 7d, 36h, 1d12h)"
_NUMBER_DIGITS_MAX: Final = 15

_DURATION_UNITS: Final = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_DURATION_UNITS_SHOWN: Final = 3

_ENGINE_TIME_RE: Final = (
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]"
    r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
    r"(?:(?P<zulu>[Zz])|(?P<rfc>[+-][0-9]{2}:[0-9]{2})|"
    r" (?P<go>[+-][0-9]{4})(?: [A-Za-z0-9+-]+)?)"
)
_ZONE_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-")


def parse_age(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``2w``, ``45s`` or a sum such as ``1d12h`` / ``1d 12h``.

    Whole numbers only; ``0s`` is allowed (every stopped container qualifies).
    """
    import re

    from containai.domain.validation import show

    stripped = text.strip()
    if re.fullmatch(_AGE_RE, stripped) is None:
        raise UsageError(f"invalid age {show(text)}: {_AGE_HINT}")
    total = 0
    for number, unit in re.findall(_AGE_PART_RE, stripped):
        if len(number.lstrip("0")) > _NUMBER_DIGITS_MAX:
            raise UsageError(f"invalid age {show(text)}: too large; {_AGE_HINT}")
        total += int(number) * UNIT_SECONDS[unit]
    if total > AGE_MAX.total_seconds():
        raise UsageError(f"invalid age {show(text)}: too large; {_AGE_HINT}")
    return timedelta(seconds=total)


def format_duration(seconds: float) -> str:
    """``3d 4h 12m``, ``1h 0m 5s``, ``2h``, ``45s``: at most 3 units starting at the largest
    non-zero one, zero units at the end dropped, seconds floored, negative shown as ``0s``."""
    if math.isnan(seconds):
        raise ValueError("duration must be a number, got nan")
    if math.isinf(seconds):
        raise ValueError(f"duration must be finite, got {seconds}")
    remaining = max(0, math.floor(seconds))
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        count, remaining = divmod(remaining, size)
        if count or parts:
            parts.append(f"{count}{unit}")
        if len(parts) == _DURATION_UNITS_SHOWN:
            break
    while len(parts) > 1 and int(parts[-1][:-1]) == 0:
        parts.pop()
    return " ".join(parts) or "0s"


def parse_engine_time(text: str) -> datetime | None:
    """A Docker timestamp -> aware UTC datetime, or ``None`` when unknown.

    Accepts RFC 3339 with up to 9 fractional digits and ``Z`` or ``+hh:mm``
    (``docker inspect``) and Go's default form ``2026-11-27 08:34:31 +0000 UTC``
    (``docker ps``). The engine's zero time (``0001-01-01T00:00:00Z``), empty
    text and anything unparsable give ``None``: unknown, never "ancient".
    Fractions beyond microseconds are truncated.
    """
    stripped = text.strip()
    fields = _engine_time_fields(stripped)
    if fields is None:
        import re  # the rarer shapes (+hh:mm offsets); `cai list` never gets here

        match = re.fullmatch(_ENGINE_TIME_RE, stripped)
        if match is None:
            return None
        fields = (
            match.group("date"),
            match.group("time"),
            match.group("frac") or "",
            match.group("rfc") or match.group("go") or "+0000",
        )
    return _moment(*fields)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _engine_time_fields(text: str) -> tuple[str, str, str, str] | None:
    """(date, time, fraction, offset) of the two shapes Docker writes most, read without
    a regex (``re`` costs ``cai list`` ~6 ms): ``2026-11-27T08:34:31.123456789Z`` and
    ``2026-11-27 08:34:31 +0000 UTC``. ``None`` for anything else (the regex decides)."""
    date, sep, time, rest = text[:10], text[10:11], text[11:19], text[19:]
    if not (
        len(text) >= 20
        and sep in ("T", "t", " ")
        and date[4] == date[7] == "-"
        and _digits(date[:4] + date[5:7] + date[8:])
        and time[2] == time[5] == ":"
        and _digits(time[:2] + time[3:5] + time[6:])
    ):
        return None
    frac = ""
    if rest.startswith("."):
        end = 1
        while end < len(rest) and "0" <= rest[end] <= "9":
            end += 1
        frac, rest = rest[1:end], rest[end:]
        if not 1 <= len(frac) <= 9:
            return None
    if rest in ("Z", "z"):
        return date, time, frac, "+0000"
    if len(rest) >= 6 and rest[0] == " " and rest[1] in ("+", "-") and _digits(rest[2:6]):
        zone = rest[6:]
        if zone == "" or (zone[:1] == " " and len(zone) > 1 and set(zone[1:]) <= _ZONE_CHARS):
            return date, time, frac, rest[1:6]
    return None


def _moment(date: str, time: str, frac: str, offset: str) -> datetime | None:
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        return None
    micro = frac.ljust(6, "0")[:6]
    try:
        local = datetime.fromisoformat(f"{date}T{time}")
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        moment = local.replace(microsecond=int(micro), tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if moment.year == 1 and moment.month == 1 and moment.day == 1:
        return None  # the engine's zero time (possibly shifted by a zone offset)
    return moment
