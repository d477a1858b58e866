"""Reading and presenting times: naive inputs are read in the calendar's zone, outputs carry UTC,
local time and the IANA zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from servers.calendar.model import EventTime
from servers.kit.errors import DomainError


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError("invalid_argument", f"{name!r} is not an IANA time zone (e.g. Europe/Paris)", details={"field": "zone"}) from None


def parse_instant(value: str | datetime, tz: str, field: str) -> datetime:
    """An aware datetime; a value without offset is read in `tz`."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DomainError("invalid_argument", f"{field}: {value!r} is not an ISO 8601 date-time", details={"field": field}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone(tz))


def parse_date(value: str | date, field: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise DomainError("invalid_argument", f"{field}: {value!r} is not a date (YYYY-MM-DD)", details={"field": field}) from None


def event_time(value: datetime | date, tz: str) -> EventTime:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=zone(tz))
        name = getattr(aware.tzinfo, "key", None) or tz
        return EventTime(utc=aware.astimezone(UTC), local=aware.astimezone(zone(name)), zone=name)
    return EventTime(date=value)


def as_utc(value: datetime | date, tz: str) -> datetime:
    """The instant a time or an all-day date starts at, in UTC (dates start at local midnight)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone(tz))).astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=zone(tz)).astimezone(UTC)

