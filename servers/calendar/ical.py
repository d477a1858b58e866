"""Events as iCalendar (RFC 5545) objects: one VCALENDAR per series (master VEVENT with RRULE and
EXDATEs, plus RECURRENCE-ID overrides), expanded with `recurring-ical-events`. The embedded store
and CalDAV keep exactly these objects, so both share this code — no hand-written RRULE logic."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Alarm, Calendar
from icalendar import Event as VEvent
from icalendar import vCalAddress, vRecur

from servers.calendar import series_edits
from servers.calendar.model import Attendee, Event, EventChanges, NewEvent, Scope
from servers.calendar.timeutil import as_utc, event_time, require_order, second_occurrence, storable
from servers.calendar.timeutil import same_start as _same_start
from servers.kit.errors import DomainError

PARTSTAT = {"accepted": "ACCEPTED", "declined": "DECLINED", "tentative": "TENTATIVE", "needs_action": "NEEDS-ACTION"}
RESPONSE = {v: k for k, v in PARTSTAT.items()}


def new_uid() -> str:
    return f"{uuid.uuid4()}@mcp-hub"


def etag_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def _set_attendees(component: VEvent, attendees: list[Attendee]) -> None:
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
    _set_attendees(event, new.attendees)
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
    component = _instance(calendar, instance_start)
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


def _exact_end(series: VEvent, start: datetime | date, end: datetime | date) -> datetime | date:
    """An occurrence's end by the series' exact duration (RFC 5545 §3.8.5.3). The expansion adds
    the duration to the wall clock, which on a DST day can end an occurrence before it starts."""
    first = series["DTSTART"].dt
    last = (series.get("DTEND") or series["DTSTART"]).dt
    if not all(isinstance(t, datetime) and t.tzinfo is not None for t in (start, end, first, last)):
        return end
    # What the expansion added to the start on the wall clock: Python's difference of the two, the
    # wall-clock one within one zone, the exact one across two (an end stored in UTC: `storable`
    # writes the second occurrence of an ambiguous local time so, which a 5-minute event ending
    # after a fall-back turned into 65 minutes).
    added = last - first  # type: ignore[operator]
    exact = last.astimezone(UTC) - first.astimezone(UTC)  # type: ignore[union-attr]
    if end.replace(tzinfo=None) - start.replace(tzinfo=None) != added:  # type: ignore[union-attr]
        return end  # an override with its own length
    if first.tzinfo is last.tzinfo and added != exact:  # type: ignore[union-attr]
        return end  # a first occurrence that itself spans a DST change: its wall-clock length is kept
    return (start.astimezone(UTC) + exact).astimezone(end.tzinfo)  # type: ignore[union-attr]


def _instance(calendar: Calendar, instance_start: datetime | date) -> VEvent:
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
    raise DomainError("not_found", f"the series {base['UID']} has no occurrence starting {instance_start}")


def _apply(component: VEvent, changes: EventChanges) -> None:
    for field, prop in (("title", "summary"), ("description", "description"), ("location", "location")):
        value = getattr(changes, field)
        if value is not None:
            component.pop(prop.upper(), None)
            component.add(prop, value)
    if changes.start is not None:
        duration = _duration(component)
        component.pop("DTSTART")
        component.add("dtstart", storable(changes.start))
        if changes.end is None and duration is not None:
            # A series keeps its wall-clock length (what RRULE expansion repeats); one event its exact length.
            component.pop("DTEND", None)
            start = changes.start
            exact = isinstance(start, datetime) and start.tzinfo is not None and "RRULE" not in component
            moved = (start.astimezone(UTC) + duration).astimezone(start.tzinfo) if exact else start + duration  # type: ignore[union-attr]
            component.add("dtend", storable(moved))
    if changes.end is not None:
        component.pop("DTEND", None)
        component.add("dtend", storable(changes.end))
    if changes.start is not None or changes.end is not None:
        require_order(component["DTSTART"].dt, (component.get("DTEND") or component["DTSTART"]).dt, "UTC")
    if changes.attendees is not None:
        _set_attendees(component, changes.attendees)
    component.pop("DTSTAMP", None)
    component.add("dtstamp", datetime.now(UTC))
    seq = int(component.get("SEQUENCE", 0)) + 1
    component.pop("SEQUENCE", None)
    component.add("sequence", seq)


def _duration(component: VEvent) -> timedelta | None:
    """DTEND - DTSTART: wall-clock for a series master, exact for one event (days for all-day)."""
    if "DTEND" not in component:
        return None
    start, end = component["DTSTART"].dt, component["DTEND"].dt
    if isinstance(start, datetime) and isinstance(end, datetime) and start.tzinfo is not None and end.tzinfo is not None:
        if "RRULE" in component:
            return end.replace(tzinfo=None) - start.replace(tzinfo=None)
        return end.astimezone(UTC) - start.astimezone(UTC)
    return end - start  # type: ignore[no-any-return]


def _series_time(base: VEvent, value: datetime | date) -> datetime | date:
    """An instance time in the series' own zone, so EXDATE/RECURRENCE-ID carry a real TZID (not
    a fixed offset other servers cannot resolve)."""
    start = base["DTSTART"].dt
    if isinstance(value, datetime) and isinstance(start, datetime) and start.tzinfo is not None:
        return value.astimezone(start.tzinfo)
    return value


def _until_before(base: VEvent, instance_start: datetime | date) -> None:
    rule = base["RRULE"]
    rule.pop("COUNT", None)
    rule["UNTIL"] = [as_utc(instance_start, "UTC") - timedelta(seconds=1)] if isinstance(instance_start, datetime) \
        else [instance_start - timedelta(days=1)]


def change(calendar: Calendar, scope: Scope, instance_start: datetime | date | None, changes: EventChanges) -> list[Calendar]:
    """Apply an edit; returns the objects to store (the split-off series comes second). Moving a
    series (or the split-off part) moves its edited and deleted occurrences with it (`_carry`)."""
    base = master(calendar)
    if scope == "all" or "RRULE" not in base:
        if changes.rrule == "" and "RRULE" in base:
            _become_first_occurrence(calendar)
        old_start, old_rule = base["DTSTART"].dt, vRecur(dict(base["RRULE"])) if "RRULE" in base else None
        _apply(base, changes)
        if old_rule is not None and changes.start is not None:
            overrides, exdates = series_edits.overrides(calendar), series_edits.exdates(base)
            base.pop("EXDATE", None)
            for override in overrides:
                calendar.subcomponents.remove(override)
            kept: list[VEvent] = []
            series_edits.carry(overrides, exdates, old_start, base, kept, str(base["UID"]))
            for override in kept:
                calendar.add_component(override)
            new_start = base["DTSTART"].dt
            until = (old_rule.get("UNTIL") or [None])[0]
            if changes.rrule is None and isinstance(until, datetime) and isinstance(new_start, datetime):
                # The series keeps its number of occurrences: its UNTIL moves with it.
                base["RRULE"]["UNTIL"] = [until + (as_utc(new_start, "UTC") - as_utc(old_start, "UTC"))]
        if changes.rrule is not None:
            base.pop("RRULE", None)
            if changes.rrule:
                base.add("rrule", parse_rrule(changes.rrule))
                series_edits.fit_to_rule(calendar, move_start=changes.start is None)
            else:  # no longer a series: its edited occurrences have nothing to belong to
                base.pop("EXDATE", None)
                for override in series_edits.overrides(calendar):
                    calendar.subcomponents.remove(override)
        return [calendar]
    if instance_start is None:
        raise DomainError("invalid_argument", "give instance_start to change one occurrence (or use scope='all')")
    if scope == "this":
        occurrence = _instance(calendar, instance_start)
        override = VEvent()
        for key, value in occurrence.items():
            if key not in ("RRULE", "EXDATE", "RDATE"):
                override[key] = value
        if "RECURRENCE-ID" not in override:
            override.add("recurrence-id", _series_time(base, instance_start))
        for existing in list(calendar.subcomponents):
            rid = existing.get("RECURRENCE-ID") if existing.name == "VEVENT" else None
            if rid is not None and _same_start(rid.dt, instance_start):
                calendar.subcomponents.remove(existing)
        _apply(override, changes)
        calendar.add_component(override)
        return [calendar]
    # this_and_following: end the old series before the instance, start a new one from it.
    occurrence = _instance(calendar, instance_start)
    follow = VEvent()
    for key, value in base.items():
        if key not in ("UID", "EXDATE", "RECURRENCE-ID"):
            follow[key] = value
    follow.add("uid", new_uid())
    follow.pop("DTSTART")
    follow.pop("DTEND", None)
    slot = _series_time(base, instance_start)  # the occurrence's original time, even if it was moved on its own
    length = _duration(base)
    follow.add("dtstart", slot)
    follow.add("dtend", slot + length if length is not None else slot)
    rule = vRecur(dict(base["RRULE"]))
    if "COUNT" in rule:
        # The new series must end where the old one would have: turn COUNT into the last start.
        ends = [o["DTSTART"].dt for o in occurrences(calendar, as_utc(base["DTSTART"].dt, "UTC"), datetime(9999, 1, 1, tzinfo=UTC))]
        rule.pop("COUNT")
        last = max((as_utc(e, "UTC") for e in ends), default=as_utc(instance_start, "UTC"))
        rule["UNTIL"] = [last]
    follow.pop("RRULE")
    follow.add("rrule", rule)
    _until_before(base, instance_start)
    _apply(follow, changes)
    later = [o for o in series_edits.overrides(calendar) if series_edits.at_or_after(o["RECURRENCE-ID"].dt, instance_start)]
    for override in later:
        calendar.subcomponents.remove(override)
    old_exdates = series_edits.exdates(base)
    base.pop("EXDATE", None)
    for value in old_exdates:
        if not series_edits.at_or_after(value, instance_start):
            base.add("exdate", value)
    carried: list[VEvent] = []
    series_edits.carry(later, [v for v in old_exdates if series_edits.at_or_after(v, instance_start)], slot, follow, carried, str(follow["UID"]))
    shift = as_utc(follow["DTSTART"].dt, "UTC") - as_utc(slot, "UTC")
    if shift and "UNTIL" in follow["RRULE"]:
        # Moving the series later must not cut its last occurrence off.
        until = follow["RRULE"]["UNTIL"][0]
        follow["RRULE"]["UNTIL"] = [until + shift if isinstance(until, datetime) else until]
    if changes.rrule:
        follow.pop("RRULE")
        follow.add("rrule", parse_rrule(changes.rrule))
    split = Calendar()
    split.add("prodid", "-//mcp-hub//calendar//EN")
    split.add("version", "2.0")
    split.add_component(follow)
    for override in carried:
        split.add_component(override)
    if changes.rrule:
        series_edits.fit_to_rule(split, move_start=changes.start is None)
    split.add_missing_timezones()
    return [calendar, split]


def _become_first_occurrence(calendar: Calendar) -> None:
    """A series losing its rule becomes its first remaining occurrence as it shows now: a deleted
    first one is skipped, an edited one keeps its edits (outside review: `rrule=""` brought back the
    deleted first occurrence and dropped the edited one). The rest of the series goes."""
    base = master(calendar)
    first = next(iter(recurring_ical_events.of(calendar).all()), None)
    if first is None:
        return
    uid = base["UID"]
    for key in list(base.keys()):
        del base[key]
    base.add("uid", uid)
    for key, value in first.items():
        if key not in ("UID", "RECURRENCE-ID", "RRULE", "EXDATE", "RDATE"):
            base[key] = value


def remove(calendar: Calendar, scope: Scope, instance_start: datetime | date | None) -> Calendar | None:
    """Delete an occurrence, the rest of a series, or everything (None: delete the object)."""
    base = master(calendar)
    if scope == "all" or "RRULE" not in base:
        return None
    if instance_start is None:
        raise DomainError("invalid_argument", "give instance_start to delete one occurrence (or use scope='all')")
    if scope == "this" and any(_same_start(value, instance_start) for value in series_edits.exdates(base)):
        return calendar  # deleted already (a retry after a lost answer): nothing more to do
    _instance(calendar, instance_start)
    if scope == "this":
        base.add("exdate", _series_time(base, instance_start))
        for existing in list(calendar.subcomponents):
            rid = existing.get("RECURRENCE-ID") if existing.name == "VEVENT" else None
            if rid is not None and _same_start(rid.dt, instance_start):
                calendar.subcomponents.remove(existing)
    else:
        _until_before(base, instance_start)
        for override in series_edits.overrides(calendar):  # edited occurrences after the cut go too
            if series_edits.at_or_after(override["RECURRENCE-ID"].dt, instance_start):
                calendar.subcomponents.remove(override)
    if not has_occurrences(calendar):
        return None  # every occurrence is gone (a COUNT=1 series, the last one left): the object goes too
    return calendar


def has_occurrences(calendar: Calendar) -> bool:
    """Whether any occurrence of the object is left (a finite series can have every one deleted)."""
    return next(iter(recurring_ical_events.of(calendar).all()), None) is not None


def respond(calendar: Calendar, email: str, response: str, instance_start: datetime | date | None) -> Calendar:
    """Set one attendee's PARTSTAT on the series or on one occurrence."""
    targets = [master(calendar)]
    if instance_start is not None:
        change(calendar, "this", instance_start, EventChanges())
        targets = [c for c in calendar.walk("VEVENT") if c.get("RECURRENCE-ID") is not None
                   and _same_start(c["RECURRENCE-ID"].dt, instance_start)]
    for component in targets:
        raw = component.get("ATTENDEE", [])
        addresses = raw if isinstance(raw, list) else [raw]
        match = [a for a in addresses if str(a).lower().removeprefix("mailto:") == email.lower()]
        if not match:
            raise DomainError("invalid_argument", f"{email} is not invited to this event")
        for address in match:
            address.params["PARTSTAT"] = PARTSTAT[response]
    return calendar
