"""Reading and presenting times: naive inputs are read in the calendar's zone, outputs carry UTC,
local time and the IANA zone.

Rules for event times (RFC 5545 §3.3.5 where it speaks):
- An instant with an offset (`Z`, `+02:00`, `-05:30`) is that instant. It is kept in the zone the
  caller names (`zone`), else in UTC — never as a fixed-offset pseudo zone, which iCalendar would
  write as `TZID="UTC+02:00"` and other readers resolve differently.
- A floating local time is read in the named zone. A time that does not exist there (the
  spring-forward gap) means the instant the RFC gives it: read with the offset before the gap, i.e.
  shifted forward by the gap length (Berlin 2026-03-29 02:30 → 03:30 CEST). A time that exists
  twice (fall back) is its first occurrence, as RFC 5545 says.
- Order is checked on instants, never on wall-clock times.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from servers.calendar.model import EventTime
from servers.kit.dates import in_years
from servers.kit.errors import DomainError


def local_zone() -> str:
    """The machine's IANA zone: `TZ` if it names one, else /etc/localtime's target, else UTC."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        candidates.append(str(Path("/etc/localtime").resolve()).partition("/zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; anything else (also a name too long for a file path) is invalid_argument."""
    try:
        if len(name) > 100:  # the longest IANA name is ~30 characters; longer ones fail as OSError
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if len(name) <= 60 else name[:60] + "…"
        raise DomainError("invalid_argument", f"{shown!r} is not an IANA time zone (e.g. Europe/Paris)", details={"field": "zone"}) from None


MAX_SPAN = timedelta(days=3660)
"""The longest one event (or one occurrence) lasts: ten years. Longer is a typo, or a repeating event (`rrule`)."""


def _parse(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        shown = value if len(value) <= 60 else value[:60] + "…"
        raise DomainError("invalid_argument", f"{field}: {shown!r} is not an ISO 8601 date-time (e.g. 2026-06-10T11:00:00+02:00)",
                          details={"field": field}) from None
    in_years(parsed, field, value)
    return parsed


def parse_instant(value: str | datetime, tz: str, field: str) -> datetime:
    """An aware datetime; a value without offset is read in `tz`."""
    parsed = value if isinstance(value, datetime) else _parse(value, field)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone(tz))


def resolve_time(value: str | datetime, floating: str, offset: str, field: str, keep_wall_clock: bool = False) -> datetime:
    """An event time as an aware datetime in an IANA zone (see the module rules).

    An instant with an offset is converted into the zone `offset`; a floating time is read in the
    zone `floating`. A nonexistent local time is moved to the real local time of its instant,
    unless `keep_wall_clock` (a series' first start: the RRULE repeats the wall-clock time and
    only that day is shifted, per RFC 5545)."""
    parsed = value if isinstance(value, datetime) else _parse(value, field)
    if parsed.tzinfo is not None:
        return parsed.astimezone(zone(offset))
    local = parsed.replace(tzinfo=zone(floating), fold=0)
    return local if keep_wall_clock else normalized(local)


def normalized(value: datetime) -> datetime:
    """The same instant with a wall-clock time that exists in its zone (gap times move forward)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).astimezone(value.tzinfo)


def second_occurrence(value: datetime) -> bool:
    """True if the wall-clock time is the second of a local time its zone repeats (clocks go back):
    a TZID names only the first, so `storable` keeps such a time in UTC."""
    return value.tzinfo is not None and value.fold == 1 and value.replace(fold=0).utcoffset() != value.utcoffset()


def in_gap(value: datetime) -> bool:
    """True if the wall-clock time does not exist in its zone (spring-forward gap)."""
    return value.tzinfo is not None and normalized(value).replace(tzinfo=None) != value.replace(tzinfo=None)


def parse_date(value: str | date, field: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = str(value).strip()
    if len(text) > 10 and text[:10].count("-") == 2 and text[10:11] in ("T", " "):
        # A date-time where a date belongs (all_day=true with a time, say): refused, never cut to its date
        # (outside review: "2026-06-01T23:00:00-05:00" kept 06-01 without a word; in UTC it is 06-02).
        raise DomainError("invalid_argument", f"{field}: {text[:60]!r} has a time, but all-day events take dates: give "
                          f"{text[:10]!r} (the date you mean) or leave all_day out for a timed event", details={"field": field})
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise DomainError("invalid_argument", f"{field}: {text[:60]!r} is not a date (YYYY-MM-DD)", details={"field": field}) from None
    in_years(parsed, field, text)
    return parsed


def event_time(value: datetime | date, tz: str) -> EventTime:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=zone(tz))
        name = getattr(aware.tzinfo, "key", None) or tz
        moment = aware.astimezone(UTC)
        return EventTime(utc=moment, local=moment.astimezone(zone(name)), zone=name)
    return EventTime(date=value)


def as_utc(value: datetime | date, tz: str) -> datetime:
    """The instant a time or an all-day date starts at, in UTC (dates start at local midnight)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone(tz))).astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=zone(tz)).astimezone(UTC)


def require_order(start: datetime | date, end: datetime | date, tz: str) -> None:
    """`end` strictly after `start`, compared as instants (aware datetimes sharing a tzinfo would
    otherwise compare their wall clocks, and a gap could make a 1-hour event zero-length)."""
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise DomainError("invalid_argument", "start and end must both be date-times, or both dates (all-day)",
                          details={"field": "end"})
    if (as_utc(end, tz) - as_utc(start, tz)) > MAX_SPAN:
        raise DomainError("invalid_argument", f"end: an event lasts at most {MAX_SPAN.days // 366} years (start {start.isoformat()}, "
                          f"end {end.isoformat()}); for one that repeats, give rrule", details={"field": "end"})
    if isinstance(start, datetime):
        first, last = as_utc(start, tz), as_utc(end, tz)  # type: ignore[arg-type]
        if last <= first:
            shifted = [f"{name} {value.replace(tzinfo=None).isoformat()} does not exist in {getattr(value.tzinfo, 'key', tz)} "
                       f"(clocks go forward), so it means {normalized(value).isoformat()}"
                       for name, value in (("start", start), ("end", end)) if isinstance(value, datetime) and in_gap(value)]
            why = f" ({'; '.join(shifted)})" if shifted else ""
            raise DomainError("invalid_argument", f"end must be after start: start is {first.isoformat()}, end is "
                              f"{last.isoformat()} in UTC{why}", details={"field": "end"})
    elif end <= start:
        raise DomainError("invalid_argument", "end must be after start (all-day ends are exclusive: the day after)",
                          details={"field": "end"})


UTC_ZONE = ZoneInfo("UTC")


def storable(value: datetime | date) -> datetime | date:
    """A time iCalendar can carry exactly: a named IANA zone (TZID) or UTC. A fixed offset would be
    written as `TZID="UTC+02:00"`, which readers resolve to some other zone; the second occurrence
    of an ambiguous local time (fall back) cannot be told from the first with a TZID. Both are
    stored in UTC instead — the same instant."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        return value
    if getattr(value.tzinfo, "key", None) is None or second_occurrence(value):
        return value.astimezone(UTC_ZONE)
    return value


def same_start(a: datetime | date, b: datetime | date) -> bool:
    """Whether two starts are the same instant (dates: the same day; two floating times: the same wall clock)."""
    if isinstance(a, datetime) and isinstance(b, datetime) and a.tzinfo is None and b.tzinfo is None:
        return a == b
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.astimezone(UTC) == b.astimezone(UTC)
    return a == b
