"""Turning create_event / update_event arguments into checked values, the same for every backend
(embedded, CalDAV, Google, Graph), so no provider sees an offset it may misread, a zero-length
event, an RRULE nobody validated, or an attendee that is not an address."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

import anyio
from pydantic import Field

from servers.calendar import rrules
from servers.calendar.model import Attendee, Event, EventChanges, EventTime
from servers.calendar.timeutil import as_utc, in_gap, normalized, parse_date, require_order, resolve_time, second_occurrence, zone
from servers.kit.errors import DomainError

MAX_REMINDER = 4 * 7 * 24 * 60  # four weeks, Google's limit too
Reminder = Annotated[int, Field(ge=0, le=MAX_REMINDER, description="Minutes before the start (0 = at the start).")]
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def attendee_list(values: list[str] | None) -> list[Attendee]:
    """Attendees as plain email addresses (duplicates, compared without case, kept once)."""
    out: list[Attendee] = []
    seen: set[str] = set()
    for index, value in enumerate(values or []):
        address = value.strip()
        if len(address) > 254 or not EMAIL.match(address):
            shown = address if len(address) <= 60 else address[:60] + "…"
            raise DomainError("invalid_argument", f"attendees[{index}]: {shown!r} is not an email address (e.g. ana@example.com)",
                              details={"field": "attendees", "index": index})
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(Attendee(email=address))
    return out


def event_time(value: str, floating: str, offset: str, field: str, all_day: bool | None, series: bool) -> datetime | date:
    """A date (all-day: `all_day`, or None and a bare YYYY-MM-DD) or a resolved date-time. A local
    time in a DST gap is moved forward by the gap (RFC 5545); a series keeps the wall-clock time it
    repeats, but may not begin in a gap (refused: its first occurrence would have no clear length).
    Decided: times are kept to the second (iCalendar has no fractions), so a fraction is refused
    rather than dropped; a bare date is a timed value only with all_day (refused, never midnight)."""
    if all_day or (all_day is None and len(value.strip()) == 10):
        return parse_date(value, field)
    if len(value.strip()) == 10:
        raise DomainError("invalid_argument", f"{field}: {value.strip()!r} is a date without a time; give a date-time "
                          "(2026-06-10T09:00:00) or pass all_day=true for an all-day event", details={"field": field})
    moment = resolve_time(value, floating, offset, field, keep_wall_clock=True)
    if moment.microsecond:
        raise DomainError("invalid_argument", f"{field}: event times are kept to the second (iCalendar has no fractions); "
                          "drop the fraction of a second", details={"field": field})
    if series and field == "start":
        refuse_series_start(moment)
    if not in_gap(moment):
        return moment
    if series and field == "start":
        raise DomainError("invalid_argument", f"start: {moment.replace(tzinfo=None).isoformat()} does not exist in {floating} "
                          "(clocks go forward); a series cannot begin there: start it on another day or at a time that "
                          "exists (later occurrences at this local time move forward by the gap)", details={"field": "start"})
    return moment if series else normalized(moment)


def refuse_series_start(moment: datetime | date) -> None:
    """Refuse a series beginning at the second time of a local time its zone repeats (clocks go
    back): iCalendar names only the first, so it would be kept in UTC and repeat at the wrong hour
    after the next change."""
    if isinstance(moment, datetime) and second_occurrence(moment):
        first = moment.replace(fold=0)
        where = getattr(moment.tzinfo, "key", None) or "its zone"
        raise DomainError("invalid_argument", f"start: {moment.replace(tzinfo=None).isoformat()} happens twice in {where} "
                          f"(clocks go back) and {moment.isoformat()} is the second time; a series cannot begin there: "
                          "iCalendar names only the first, so it would repeat at the wrong hour. Start it on another day or "
                          f"at the first time ({first.isoformat()})", details={"field": "start"})


def times(start: str, end: str, floating: str, offset: str, all_day: bool | None, series: bool) -> tuple[datetime | date, datetime | date]:
    """Start and end, with end after start compared as instants (the error names a gap that moved one)."""
    zone(floating)
    start_at = event_time(start, floating, offset, "start", all_day, series)
    end_at = event_time(end, floating, offset, "end", all_day, series)
    wall = [resolve_time(v, floating, offset, f, keep_wall_clock=True) if isinstance(t, datetime) else t
            for v, f, t in ((start, "start", start_at), (end, "end", end_at))]
    require_order(wall[0], wall[1], floating)
    return start_at, end_at


async def checked_rrule(rule: str | None, start: datetime | date, tz: str) -> str | None:
    """The validated, normalized rule (None or "" pass through: no rule, or remove it). Checking
    may walk the rule for a moment, so it runs off the event loop."""
    if not rule:
        return rule
    series_zone = getattr(start.tzinfo, "key", None) if isinstance(start, datetime) else None
    return await anyio.to_thread.run_sync(rrules.validate, rule, start, series_zone or tz)


async def require_on_rule(rule: str, start: datetime | date) -> None:
    """A series begins on a time its rule repeats on: iCalendar makes DTSTART an occurrence whatever
    the rule says, so a Thursday start of a Tuesday rule would add a Thursday (a COUNT=3 series
    showing four; second outside review). Refused with the rule's first time from `start`."""
    first = await anyio.to_thread.run_sync(_first_on_rule, rule.removeprefix("RRULE:"), start)
    if first == start:
        return
    if first is None:  # never taken as "fine" (outside review writes28 #4: a move landed on the old days)
        raise DomainError("invalid_argument", f"start: cannot check {_day(start)} against the rule "
                          f"{rule.removeprefix('RRULE:')[:120]} (it cannot be read with this start, or never repeats from "
                          "there); give the series a rule (rrule) that includes the start", details={"field": "start"})
    shown = first.isoformat() if not isinstance(first, datetime) else first.replace(tzinfo=None).isoformat()
    raise DomainError("invalid_argument", f"start: {_day(start)} is not a time the rule {rule.removeprefix('RRULE:')[:120]} "
                      f"repeats on, so it would be an extra occurrence; its first time from there is {shown}: start the "
                      "series then, or give a rule that includes the start", details={"field": "start", "first": shown})


def _first_on_rule(rule: str, start: datetime | date) -> datetime | date | None:
    """The first time `rule`'s pattern (anchored at `start`; its COUNT/UNTIL left aside, since a move
    shifts them with the series) repeats on at or after `start`; None: none, or unreadable here."""
    anchored = rrules.anchored(rule, start, pattern_only=True)
    return rrules.first_at_or_after(anchored, start) if anchored is not None else None


def _day(moment: datetime | date) -> str:
    local = moment.replace(tzinfo=None) if isinstance(moment, datetime) else moment
    return f"{local.isoformat()} ({local.strftime('%A')})"


def existing_start(event: Event, tz: str) -> datetime | date:
    """An event's start as read back: a date, or an aware time in the event's own zone."""
    if event.start.date is not None and event.start.utc is None:
        return event.start.date
    moment = event.start.local or event.start.utc
    assert moment is not None, "a timed event has its instant"
    return moment.astimezone(zone(event.start.zone or tz))


async def reanchored(backend: Any, calendar_id: str, event_id: str, scope: str, instance: datetime | date | None,
                     new_zone: str) -> tuple[str, str]:
    """`update_event` with a `zone` and no times re-anchors: the same wall-clock start and end, now
    read in `new_zone` (a 10:00 London meeting becomes 10:00 New York). An all-day event has no
    zone to change, so that is refused rather than answered as a success that changed nothing."""
    zone(new_zone)
    target = await backend.get_event(calendar_id, event_id, instance if scope != "all" else None)
    if target.start.local is None or target.end.local is None:
        raise DomainError("invalid_argument", "zone: an all-day event has no time zone to change; pass start and end "
                          "(date-times) to make it a timed event", details={"field": "zone"})
    return _wall_clock(target.start, new_zone), _wall_clock(target.end, new_zone)


def _wall_clock(time: Any, new_zone: str) -> str:
    """The wall-clock time an event shows, to be read in `new_zone`: a naive local time, or, for the
    second of a local time both zones repeat (02:30 on a fall-back night), that second time with its
    offset — read as a naive time it would be the first, an hour off (found by review)."""
    try:
        shown = time.local.astimezone(zone(time.zone)) if time.zone else time.local
    except DomainError:  # a provider's zone name that is not IANA: its wall clock as given
        shown = time.local
    wall = shown.replace(tzinfo=None)
    if second_occurrence(shown):
        again = wall.replace(tzinfo=zone(new_zone), fold=1)
        if second_occurrence(again):
            return again.isoformat()
    return wall.isoformat()


def shows_changes(event: Event, changes: EventChanges, tz: str) -> bool:
    """Whether `event` (one occurrence as listed) already shows every field `changes` sets: an update of one occurrence
    that changes nothing then writes nothing — it had stored an identical override (outside review r35 #2). A
    description or location of "" is none; attendees compare as addresses without case; times as instants in a zone."""
    for field in ("title", "description", "location"):
        value = getattr(changes, field)
        if value is not None and (value or None) != (getattr(event, field) or None):
            return False
    for asked, shown in ((changes.start, event.start), (changes.end, event.end)):
        if asked is not None and not _same_time(asked, shown, tz):
            return False
    if changes.attendees is not None:
        return sorted(a.email.lower() for a in changes.attendees) == sorted(a.email.lower() for a in event.attendees)
    return changes.rrule is None


def _same_time(asked: datetime | date, shown: EventTime, tz: str) -> bool:
    """The same instant in the same zone (a zone-only change moves no instant but is a change: r36 #2)."""
    if isinstance(asked, datetime):
        asked_zone = getattr(asked.tzinfo, "key", None)
        return shown.utc is not None and as_utc(asked, tz) == shown.utc and (asked_zone is None or asked_zone == shown.zone)
    return shown.date == asked
