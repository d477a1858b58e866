"""Graph's times: its dateTimeTimeZone objects and zone names (Windows or IANA), for `graph` and
`graph_series` alike."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from servers.calendar.timeutil import zone


def iana(name: str | None, fallback: str = "UTC") -> str:
    """An IANA zone for a Graph zone name (IANA already, Windows, or missing)."""
    if not name:
        return fallback
    if name in ("UTC", "tzone://Microsoft/Utc"):
        return "UTC"
    return WINDOWS_TO_OLSON.get(name, name)


def local(value: datetime | date, tz: str) -> dict[str, str]:
    """Graph's dateTimeTimeZone: a wall-clock time and the zone it is in."""
    if isinstance(value, datetime):
        name = getattr(value.tzinfo, "key", None) or tz
        return {"dateTime": value.astimezone(zone(name)).replace(tzinfo=None).isoformat(), "timeZone": name}
    return {"dateTime": datetime(value.year, value.month, value.day).isoformat(), "timeZone": tz}


def read(part: dict[str, Any], tz: str) -> datetime:
    """A dateTimeTimeZone as an aware datetime in its zone (seven fractional digits cut to six)."""
    text = part["dateTime"]
    if "." in text:  # Graph sends seven fractional digits
        head, _, fraction = text.partition(".")
        text = f"{head}.{fraction[:6]}"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    name = iana(part.get("timeZone"), tz)
    return moment.astimezone(zone(name)) if moment.tzinfo else moment.replace(tzinfo=zone(name))
