"""Wall-clock times of events in their own time zone (IANA tz database names), as organizers type
them: used by events- and meetings-service."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones


class InvalidTime(ValueError):
    """A time zone that does not exist, or a wall-clock time that does not exist in it."""


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` ("Europe/Berlin"); InvalidTime for any other name."""
    # Looked up in the list of names first: ZoneInfo opens a file of that name, and an odd name
    # fails there with other errors than "not found" (a very long one: file name too long).
    if name not in _iana_names():
        raise InvalidTime(f"unknown time zone {name[:100]!r}; use an IANA name such as Europe/Berlin")
    return ZoneInfo(name)


def to_utc(value: datetime, timezone: str) -> datetime:
    """A time with an offset as it is; a wall-clock time (no offset) in ``timezone``, as UTC.

    A wall-clock time skipped when clocks go forward is refused (InvalidTime); one that
    occurs twice when they go back means its first occurrence (summer time, PEP 495 fold=0).
    """
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    tz = zone(timezone)
    local = value.replace(tzinfo=tz, fold=0)
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise InvalidTime(f"{value:%Y-%m-%d %H:%M} does not exist in {timezone}: the clocks go forward then")
    return local.astimezone(UTC)
