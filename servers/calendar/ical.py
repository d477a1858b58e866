"""Events as iCalendar (RFC 5545) objects: one VCALENDAR per series (master VEVENT with RRULE and
EXDATEs, plus RECURRENCE-ID overrides), expanded with `recurring-ical-events`. The embedded store
and CalDAV keep exactly these objects, so both share this code — no hand-written RRULE logic."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Alarm, Calendar
from icalendar import Event as VEvent
from icalendar import vCalAddress, vRecur

from servers.calendar.model import Attendee, Event, NewEvent
from servers.calendar import rrules
from servers.calendar.rrules import missing_occurrence
from servers.calendar.series_edits import exdates
from servers.calendar.timeutil import as_utc, event_time, in_gap, normalized, second_occurrence, storable
from servers.calendar.timeutil import same_start as _same_start
from servers.kit.errors import DomainError

PARTSTAT = {"accepted": "ACCEPTED", "declined": "DECLINED", "tentative": "TENTATIVE", "needs_action": "NEEDS-ACTION"}
RESPONSE = {v: k for k, v in PARTSTAT.items()}


def new_uid() -> str:
    return f"{uuid.uuid4()}@mcp-hub"


def owned_copy(source: VEvent, leave_out: Iterable[str] = ()) -> VEvent:
    """A new VEVENT holding deep copies of `source`'s properties (but `leave_out`) and alarms. An
    override or split-off series made from a master is edited in place later (`edits.respond` sets an
    attendee's PARTSTAT on it); sharing the master's property objects made that edit reach the master
    (outside review recheck21d #1: declining one occurrence declined the whole series)."""
    skipped = {key.upper() for key in leave_out}
    copy = VEvent()
    for key, value in source.items():
        if key.upper() not in skipped:
            copy[key] = deepcopy(value)
    for sub in source.subcomponents:
        copy.add_component(deepcopy(sub))
    return copy


def invites(text: str, email: str) -> bool:
    """Whether an object names `email` as an ATTENDEE of any of its events (emails compare without case)."""
    wanted = f"mailto:{email.lower()}"
    if wanted not in re.sub(r"\r?\n[ \t]", "", text).lower():  # a cheap test first; lines may be folded (RFC 5545 §3.1)
        return False
    for component in load(text).walk("VEVENT"):
        raw = component.get("ATTENDEE", [])
        if any(str(a).lower() == wanted for a in (raw if isinstance(raw, list) else [raw])):
            return True
    return False


def etag_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_events(sent: str, stored: str) -> bool:
    """Whether `stored` (a server's answer after storing `sent`) holds exactly `sent`'s events, line for
    line once both are parsed: servers reorder and refold lines and add VTIMEZONEs (Radicale) or
    properties of their own, which are allowed; a change to any line we sent, or another event, is not."""
    try:
        ours, theirs = _event_lines(sent), _event_lines(stored)
    except ValueError:
        return False
    return ours.keys() == theirs.keys() and all(not lines - theirs[key] for key, lines in ours.items())


def _event_lines(text: str) -> dict[str, Counter[str]]:
    """Each VEVENT's unfolded content lines (its alarms' too), by UID and RECURRENCE-ID."""
    out: dict[str, Counter[str]] = {}
    for component in load(text).walk("VEVENT"):
        recurrence = component.get("RECURRENCE-ID")
        key = f"{component.get('UID')}|{recurrence.to_ical().decode() if recurrence is not None else ''}"
        out[key] = Counter(component.to_ical().decode().replace("\r\n ", "").split("\r\n"))
    return out


def parse_rrule(rule: str) -> vRecur:
    """An RRULE the tool surface already validated (`rrules.validate`); an empty one is refused here
    too, so no caller can store `RRULE:`."""
    try:
        parsed = vRecur.from_ical(rule.removeprefix("RRULE:"))
        if "FREQ" not in parsed:
            raise ValueError("no FREQ")
        return parsed
    except ValueError:
        raise DomainError("invalid_argument", f"{rule[:80]!r} is not an RRULE (e.g. FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10)",
                          details={"field": "rrule"}) from None


def set_attendees(component: VEvent, attendees: list[Attendee]) -> None:
    component.pop("ATTENDEE", None)
    for attendee in attendees:
        address = vCalAddress(f"mailto:{attendee.email}")
        address.params["PARTSTAT"] = PARTSTAT[attendee.response]
        address.params["ROLE"] = "OPT-PARTICIPANT" if attendee.optional else "REQ-PARTICIPANT"
        if attendee.name:
            address.params["CN"] = attendee.name
        component.add("attendee", address)


def build_series(new: NewEvent, uid: str | None = None, organizer: str | None = None) -> Calendar:
    """A VCALENDAR holding one new event (or series)."""
    event = VEvent()
    event.add("uid", uid or new_uid())
    event.add("dtstamp", datetime.now(UTC))
    event.add("summary", new.title)
    event.add("dtstart", storable(new.start))
    event.add("dtend", storable(new.end))
    if new.description:
        event.add("description", new.description)
    if new.location:
        event.add("location", new.location)
    if new.rrule:
        event.add("rrule", parse_rrule(new.rrule))
    if organizer:
        event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    set_attendees(event, new.attendees)
    for minutes in new.reminders_minutes:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", new.title)
        alarm.add("trigger", timedelta(minutes=-minutes))
        event.add_component(alarm)
    calendar = Calendar()
    calendar.add("prodid", "-//mcp-hub//calendar//EN")
    calendar.add("version", "2.0")
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar


def load(text: str) -> Calendar:
    return Calendar.from_ical(text)


STAMPS = frozenset({"DTSTAMP", "SEQUENCE", "LAST-MODIFIED"})
"""Properties every write renews: two objects differing only in them hold the same event."""


def unchanged(stored: str, changed: Calendar) -> bool:
    """Whether `changed` holds what the `stored` text holds, its stamps aside: a write that changes nothing (a retried
    update whose answer was lost) is not sent, so the etag stays and another writer's `expected_etag` does not go
    stale for nothing (outside review user34 #3)."""
    def content(calendar: Calendar) -> list[str]:
        return [line for line in calendar.to_ical().decode().splitlines()
                if line.split(":", 1)[0].split(";", 1)[0].upper() not in STAMPS]
    return content(load(stored)) == content(changed)


def master(calendar: Calendar) -> VEvent:
    for component in calendar.walk("VEVENT"):
        if "RECURRENCE-ID" not in component:
            return component
    return next(iter(calendar.walk("VEVENT")))


DST_SLACK = timedelta(hours=3)
"""How much earlier than a range the expansion library is asked: it judges an occurrence by its
wall-clock end, which a DST change moves (2 h at most, Antarctica/Troll) from the exact one."""


def occurrences(calendar: Calendar, start: datetime, end: datetime) -> list[VEvent]:
    """Instances overlapping [start, end), overrides and exclusions applied."""
    return list(recurring_ical_events.of(calendar).between(start, end))


def instance_event(calendar: Calendar, instance_start: datetime | date, calendar_id: str, provider: str, tz: str,
                   etag: str | None) -> Event:
    """The occurrence of a series starting at `instance_start`, as an `Event` (a stored override keeps its own end)."""
    component = occurrence_at(calendar, instance_start)
    return to_event(component, calendar_id, provider, tz, etag, master(calendar),
                    override=is_override(component, overrides(calendar)))


def overrides(calendar: Calendar) -> set[datetime | date]:
    """The RECURRENCE-IDs (as UTC instants, or dates) of the occurrences a calendar stores on their own."""
    return {_instant(c["RECURRENCE-ID"].dt) for c in calendar.walk("VEVENT") if c.get("RECURRENCE-ID") is not None}


def is_override(occurrence: VEvent, stored: set[datetime | date]) -> bool:
    rid = occurrence.get("RECURRENCE-ID")
    return rid is not None and _instant(rid.dt) in stored


def _instant(value: datetime | date) -> datetime | date:
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo is not None else value


def recurrence_of(series: VEvent) -> list[str] | None:
    """The series' RRULE and EXDATE lines (computed once per series when expanding)."""
    if "RRULE" not in series:
        return None
    recurrence = ["RRULE:" + series["RRULE"].to_ical().decode()]
    exdates = series.get("EXDATE")
    for block in exdates if isinstance(exdates, list) else ([exdates] if exdates else []):
        recurrence.append("EXDATE:" + block.to_ical().decode())
    return recurrence


def to_event(component: VEvent, calendar_id: str, provider: str, tz: str, etag: str | None, series: VEvent | None = None,
             recurrence: list[str] | None = None, override: bool = False) -> Event:
    """`override`: the occurrence is one the calendar stores on its own (`overrides`): its end is its own."""
    start, end = component["DTSTART"].dt, (component.get("DTEND") or component["DTSTART"]).dt
    all_day = not isinstance(start, datetime)
    if all_day and start == end:
        end = start + timedelta(days=1)
    series = series or component
    if component is not series and not override:  # an occurrence the expansion made: its end is the expansion's arithmetic
        end = _exact_end(series, start, end)
        own = getattr((series.get("DTEND") or series["DTSTART"]).dt, "tzinfo", None)
        if isinstance(end, datetime) and isinstance(own, ZoneInfo) and (own.key != "UTC" or "RRULE" not in series):
            # The expansion gives the end its start's zone: a single event's end keeps the zone it was
            # stored in, a series' the named zone of its first end (its later ends are no second occurrences).
            end = end.astimezone(own)
    elif component is series and LENGTH_PROP in series:  # a split-off series whose first day is a DST day
        end = _exact_end(series, start, end)
    recurrence = recurrence or recurrence_of(series)
    zone = _event_zone(component, series)
    instance = component.get("RECURRENCE-ID")
    if instance is None and "RRULE" in series:
        instance_start: Any = start
    else:
        instance_start = instance.dt if instance is not None else None
    attendees = []
    raw_attendees = component.get("ATTENDEE", [])
    for address in raw_attendees if isinstance(raw_attendees, list) else [raw_attendees]:
        attendees.append(Attendee(email=str(address).removeprefix("mailto:").removeprefix("MAILTO:"),
                                  name=address.params.get("CN"), response=RESPONSE.get(address.params.get("PARTSTAT", ""), "needs_action"),
                                  optional=address.params.get("ROLE") == "OPT-PARTICIPANT"))
    reminders = []
    for alarm in component.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is not None and isinstance(trigger.dt, timedelta):
            reminders.append(int(-trigger.dt.total_seconds() // 60))
    organizer = component.get("ORGANIZER")
    status = str(component.get("STATUS", "CONFIRMED")).lower()
    uid = str(component["UID"])
    return Event(
        id=uid, provider=provider, remote_id=uid, calendar_id=calendar_id, title=str(component.get("SUMMARY", "")),
        description=str(component.get("DESCRIPTION", "")), location=str(component["LOCATION"]) if "LOCATION" in component else None,
        start=event_time(_shown_in(start, zone), tz), end=event_time(_shown_in(end, zone), tz), all_day=all_day,
        recurrence=recurrence,
        instance_start=instance_start, attendees=attendees,
        organizer=str(organizer).removeprefix("mailto:") if organizer else None, reminders_minutes=reminders,
        status=status if status in ("confirmed", "tentative", "cancelled") else "confirmed",  # type: ignore[arg-type]
        transparent=str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT", etag=etag,
    )


def _event_zone(component: VEvent, series: VEvent) -> ZoneInfo | None:
    """The named zone an event is shown in: its start's, else its end's (the occurrence's, then the
    series'); None for an event kept in UTC or floating."""
    for event in (component, series):
        for prop in ("DTSTART", "DTEND"):
            value = event.get(prop)
            zone = getattr(value.dt, "tzinfo", None) if value is not None else None
            if isinstance(zone, ZoneInfo) and zone.key != "UTC":
                return zone
    return None


def _shown_in(value: datetime | date, zone: ZoneInfo | None) -> datetime | date:
    """`value` as the event shows it: a time in a named zone of its own (a flight's end) as it is; a
    time `storable` kept in UTC — exactly the second occurrence of a local time the event's zone
    repeats, which a TZID cannot name — in the event's zone, while any other UTC time was asked for
    in UTC and stays so; a time in a zone without an IANA name (another client's custom VTIMEZONE)
    in the event's zone."""
    if zone is None or not isinstance(value, datetime) or value.tzinfo is None:
        return value
    key = getattr(value.tzinfo, "key", None)
    if key is not None and key != "UTC":
        return value
    local = value.astimezone(zone)
    if key is None and value.tzinfo is not UTC:
        return local  # a custom zone (even one at +00:00 now): shown in the event's
    return local if second_occurrence(local) else value


LENGTH_PROP = "X-MCP-HUB-LENGTH"
"""Seconds every occurrence of a series lasts, written only on the part split off a series at an
occurrence on a DST day (`edits.change`): its own DTSTART/DTEND (a gap time, or a first occurrence
spanning the change) cannot say the length the series had."""


def series_length(series: VEvent) -> timedelta | None:
    """The exact length of a series' occurrences (RFC 5545 §3.8.5.3), or None when they keep the
    wall-clock length of a first occurrence that itself spans a DST change (the documented choice)."""
    if LENGTH_PROP in series:
        return timedelta(seconds=int(str(series[LENGTH_PROP])))
    first = series["DTSTART"].dt
    last = (series.get("DTEND") or series["DTSTART"]).dt
    if not all(isinstance(t, datetime) and t.tzinfo is not None for t in (first, last)):
        return None
    # What the expansion adds to the start on the wall clock: Python's difference of the two, the
    # wall-clock one within one zone, the exact one across two (an end stored in UTC: `storable`
    # writes the second occurrence of an ambiguous local time so, which a 5-minute event ending
    # after a fall-back turned into 65 minutes).
    added = last - first
    exact = last.astimezone(UTC) - first.astimezone(UTC)
    if first.tzinfo is last.tzinfo and added != exact:
        return None if not in_gap(first) else added  # a gap start: the length it was written with
    return exact


def _exact_end(series: VEvent, start: datetime | date, end: datetime | date) -> datetime | date:
    """An occurrence's end by the series' exact duration (RFC 5545 §3.8.5.3). The expansion adds
    the duration to the wall clock, which on a DST day can end an occurrence before it starts."""
    first = series["DTSTART"].dt
    last = (series.get("DTEND") or series["DTSTART"]).dt
    if not all(isinstance(t, datetime) and t.tzinfo is not None for t in (start, end, first, last)):
        return end
    if end.replace(tzinfo=None) - start.replace(tzinfo=None) != last - first:  # type: ignore[union-attr,operator]
        return end  # an override with its own length
    length = series_length(series)
    if length is None:
        return end  # a first occurrence that itself spans a DST change: its wall-clock length is kept
    return (start.astimezone(UTC) + length).astimezone(end.tzinfo)  # type: ignore[union-attr]


def exact_times(occurrence: VEvent, series: VEvent) -> tuple[datetime | date, datetime | date]:
    """An occurrence's (start, end) as instants iCalendar can store: the expansion's wall-clock
    fields made exact — a start in a spring-forward gap moved forward by the gap, the end at the
    series' exact length (`_exact_end`) — so a copy of it (an override, the first occurrence of a
    series that lost its rule) keeps the times the occurrence was shown at."""
    start = occurrence["DTSTART"].dt
    end = (occurrence.get("DTEND") or occurrence["DTSTART"]).dt
    if not isinstance(start, datetime) or start.tzinfo is None:
        return start, end
    end = _exact_end(series, start, end)
    if isinstance(end, datetime):
        end = storable(normalized(end))
    return storable(normalized(start)), end


def pin_times(component: VEvent, start: datetime | date, end: datetime | date) -> None:
    """Set a component's DTSTART and DTEND (the end only if it has one)."""
    had_end = "DTEND" in component
    component.pop("DTSTART", None)
    component.pop("DTEND", None)
    component.add("dtstart", start)
    if had_end:
        component.add("dtend", end)


def anchor_floating(calendar: Calendar, tz: str) -> Calendar:
    """`calendar` with a floating series (a DTSTART without zone, as another CalDAV client may write it) anchored in
    the calendar's zone `tz`, where the listing shows it: every zoneless DTSTART, DTEND, RECURRENCE-ID and EXDATE
    gets that zone, and an UNTIL is written in UTC, as RFC 5545 asks beside a zoned start. Decision: a floating
    series is written back so once the hub changes it (outside review r39b #3: moving one read its times in the
    machine's zone, so west of UTC it lost its last occurrence, and a floating UNTIL stood beside a zoned DTSTART);
    read and listed, it stays as stored. Anything else is returned as it is."""
    first = master(calendar)["DTSTART"].dt
    if not isinstance(first, datetime) or first.tzinfo is not None:
        return calendar
    where = ZoneInfo(tz)

    def anchored(value: datetime | date) -> datetime | date:
        return value.replace(tzinfo=where) if isinstance(value, datetime) and value.tzinfo is None else value

    for component in calendar.walk("VEVENT"):
        for prop in ("DTSTART", "DTEND", "RECURRENCE-ID"):
            if prop in component and isinstance(value := component[prop].dt, datetime) and value.tzinfo is None:
                component.pop(prop)
                component.add(prop.lower(), anchored(value))
        if "EXDATE" in component:
            values = [anchored(v) for v in exdates(component)]
            component.pop("EXDATE")
            for value in values:
                component.add("exdate", value)
        rule = component.get("RRULE")
        if rule is not None and rule.get("UNTIL"):
            until = rule["UNTIL"][0]
            if isinstance(until, datetime) and until.tzinfo is None:
                rule["UNTIL"] = [until.replace(tzinfo=where).astimezone(UTC)]
    return calendar


def addressed(calendar: Calendar, instance_start: datetime | date | None, tz: str) -> datetime | date | None:
    """`instance_start` as the series names its occurrences. A floating series (a DTSTART without zone,
    as RFC 5545 allows and other CalDAV clients write) names them by wall-clock time, which the listing
    shows in the calendar's zone `tz`: an instant asked for is that wall-clock time there (before,
    compared in the machine's zone, no occurrence of it could be reached: outside review r37 #6). For reads:
    a write anchors the series first (`anchor_floating`), after which its names are instants."""
    first = master(calendar)["DTSTART"].dt
    if (isinstance(instance_start, datetime) and instance_start.tzinfo is not None
            and isinstance(first, datetime) and first.tzinfo is None):
        return instance_start.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return instance_start


def occurrence_at(calendar: Calendar, instance_start: datetime | date) -> VEvent:
    """The occurrence starting at `instance_start` (its override if there is one)."""
    base = master(calendar)
    for component in calendar.walk("VEVENT"):
        rid = component.get("RECURRENCE-ID")
        if rid is not None and _same_start(rid.dt, instance_start):
            return component
    # Asked from `DST_SLACK` earlier, as `expansion.expand` asks: the library keeps an occurrence by
    # its wall-clock end, which on a spring-forward day can fall before its exact start.
    probe_start = as_utc(instance_start, "UTC") - DST_SLACK
    for occurrence in occurrences(calendar, probe_start, probe_start + timedelta(days=2)):
        rid = occurrence.get("RECURRENCE-ID")
        start = rid.dt if rid is not None else occurrence["DTSTART"].dt
        if _same_start(start, instance_start):
            return occurrence
    raise missing_occurrence(str(base["UID"]), instance_start, ends_before(calendar, instance_start))


def ends_before(calendar: Calendar, instance_start: datetime | date) -> bool:
    """Whether a finite series' rule (its COUNT or UNTIL) has no slot at or after `instance_start`: it was
    ended before it. Judged by the rule alone, as Google and Graph judge it — a deleted last slot, or one
    whose occurrence was moved elsewhere, still counts (outside review cal29b #1, #2). A value of the other
    kind than the series' start (a date for a timed series, a time for an all-day one) is no time of it:
    never "ended"."""
    base = master(calendar)
    rule = base.get("RRULE") or {}
    start = base["DTSTART"].dt
    if isinstance(start, datetime) != isinstance(instance_start, datetime) or not ("UNTIL" in rule or "COUNT" in rule):
        return False
    if isinstance(start, datetime) and start.tzinfo is None:  # a floating series: its occurrences as shown, by slot
        moment = as_utc(instance_start, "UTC")
        return not any(as_utc((o.get("RECURRENCE-ID") or o["DTSTART"]).dt, "UTC") >= moment
                       for o in occurrences(calendar, moment - DST_SLACK, datetime(9999, 1, 1, tzinfo=UTC)))
    anchored = rrules.anchored(rule.to_ical().decode(), start)
    return anchored is not None and rrules.first_at_or_after(anchored, instance_start) is None
