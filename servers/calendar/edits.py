"""Editing stored series (`update_event`, `respond_to_event`, `delete_event` on iCalendar objects):
a change to the whole series, one occurrence (a RECURRENCE-ID override) or this and the following
(the series is cut before the occurrence and a new one starts there).

Every time an edit copies from an occurrence the expansion made is made exact first
(`ical.exact_times`): the expansion works on wall-clock fields, so on a DST day its occurrence may
start in a spring-forward gap or end by the wall clock across a change; an edit that changes one
field must leave every time as it was shown. A split starts its new series on the rule's own
wall-clock slot (never the gap-shifted time), so its later occurrences keep their times and its
COUNT/UNTIL keeps every one of them."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import recurring_ical_events
from icalendar import Calendar
from icalendar import Event as VEvent
from icalendar import vRecur

from servers.calendar import rrules, series_edits
from servers.calendar.ical import (LENGTH_PROP, PARTSTAT, ends_before, exact_times, is_override, master, new_uid, occurrence_at, occurrences,
                                   owned_copy, parse_rrule, pin_times, series_length, set_attendees)
from servers.calendar.ical import overrides as stored_overrides
from servers.calendar.model import Attendee, EventChanges, Scope
from servers.calendar.timeutil import as_utc, in_gap, require_order, same_start, storable
from servers.kit.errors import DomainError


def _apply(component: VEvent, changes: EventChanges) -> None:
    for field, prop in (("title", "summary"), ("description", "description"), ("location", "location")):
        value = getattr(changes, field)
        if value is not None and not (value == "" and prop.upper() not in component):  # "" on none: nothing to clear
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
        component.pop(LENGTH_PROP, None)  # its own DTSTART/DTEND say its length again
        require_order(component["DTSTART"].dt, (component.get("DTEND") or component["DTSTART"]).dt, "UTC")
    if changes.attendees is not None:
        _replace_attendees(component, changes.attendees)
    component.pop("DTSTAMP", None)
    component.add("dtstamp", datetime.now(UTC))
    seq = int(component.get("SEQUENCE", 0)) + 1
    component.pop("SEQUENCE", None)
    component.add("sequence", seq)


def _replace_attendees(component: VEvent, attendees: list[Attendee]) -> None:
    """The attendee list `attendees`, where an invitee already there keeps its ATTENDEE as stored — answer, role, name
    (cal30 #5) and every other parameter another client wrote (CUTYPE=ROOM, RSVP, DELEGATED-FROM, X-…: outside review
    r35 #5, a room became a person) — and the same people as before leave the list untouched, order included, so
    re-sending a list unchanged writes nothing (`ical.unchanged`)."""
    def key(address: Any) -> str:
        return str(address).lower().removeprefix("mailto:")

    stored = _attendees(component)
    had = {key(a): a for a in stored}
    if sorted(had) == sorted(a.email.lower() for a in attendees) and len(stored) == len(attendees):
        return
    set_attendees(component, attendees)
    kept = [had.get(key(address), address) for address in _attendees(component)]
    component.pop("ATTENDEE", None)
    for address in kept:
        component.add("attendee", address)


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


def _rule_slot(calendar: Calendar, instance_start: datetime | date) -> datetime | date:
    """The start the series' rule gives the occurrence at `instance_start`, on the wall clock (a
    spring-forward gap time stays as written; RFC 5545 moves it forward when read)."""
    bare = Calendar()
    for component in calendar.subcomponents:
        if component.name != "VEVENT" or "RECURRENCE-ID" not in component:
            bare.add_component(component)
    rid = occurrence_at(bare, instance_start).get("RECURRENCE-ID")
    return rid.dt if rid is not None else _series_time(master(calendar), instance_start)


def _pin_first(follow: VEvent, slot: datetime | date, shown: tuple[datetime | date, datetime | date],
               length: timedelta | None) -> VEvent | None:
    """For a split starting on a DST day: an override holding its first occurrence at the times it
    was shown (`shown`), and the old series' exact length on the new one (`ical.LENGTH_PROP`), when the
    new series' own DTSTART/DTEND would give other instants (a gap start, an end across a change)."""
    start, end = follow["DTSTART"].dt, follow["DTEND"].dt if "DTEND" in follow else follow["DTSTART"].dt
    if not isinstance(start, datetime) or (same_start(start, shown[0]) and same_start(end, shown[1]) and not in_gap(start)):
        return None
    if length is not None:
        follow.add(LENGTH_PROP, str(int(length.total_seconds())))
    first = owned_copy(follow, ("RRULE", "EXDATE", "RDATE", LENGTH_PROP))
    first.add("recurrence-id", slot)
    pin_times(first, *shown)
    return first


def change(calendar: Calendar, scope: Scope, instance_start: datetime | date | None, changes: EventChanges) -> list[Calendar]:
    """Apply an edit; returns the objects to store (the split-off series comes second). Moving a
    series (or the split-off part) moves its edited and deleted occurrences with it (`series_edits.carry`)."""
    base = master(calendar)
    if scope == "all" or "RRULE" not in base:
        if changes.rrule == "" and "RRULE" in base:
            _become_first_occurrence(calendar)
        old_start, old_rule = base["DTSTART"].dt, vRecur(dict(base["RRULE"])) if "RRULE" in base else None
        series_values = {prop: deepcopy(base.get(prop)) for prop in REACHED.values()}
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
            if changes.rrule is None and until is not None:
                # The series keeps its number of occurrences: its UNTIL moves with it (a DATE UNTIL of an
                # all-day series too: outside review writes28 #2).
                base["RRULE"]["UNTIL"] = [rrules.shift_until(until, old_start, new_start)]
        if changes.rrule is not None:
            base.pop("RRULE", None)
            if changes.rrule:
                base.add("rrule", parse_rrule(changes.rrule))
                series_edits.fit_to_rule(calendar, move_start=changes.start is None)
            else:  # no longer a series: its edited occurrences have nothing to belong to
                base.pop("EXDATE", None)
                for override in series_edits.overrides(calendar):
                    calendar.subcomponents.remove(override)
        _reach_edited(series_edits.overrides(calendar), series_values, changes, None)
        return [calendar]
    if instance_start is None:
        raise DomainError("invalid_argument", "give instance_start to change one occurrence (or use scope='all')")
    if scope == "this":
        occurrence = occurrence_at(calendar, instance_start)
        override = owned_copy(occurrence, ("RRULE", "EXDATE", "RDATE", LENGTH_PROP))
        if not is_override(occurrence, stored_overrides(calendar)):
            pin_times(override, *exact_times(occurrence, base))  # the times it was shown at, not the wall-clock fields
        if "RECURRENCE-ID" not in override:
            override.add("recurrence-id", _series_time(base, instance_start))
        for existing in list(calendar.subcomponents):
            rid = existing.get("RECURRENCE-ID") if existing.name == "VEVENT" else None
            if rid is not None and same_start(rid.dt, instance_start):
                calendar.subcomponents.remove(existing)
        _apply(override, changes)
        calendar.add_component(override)
        return [calendar]
    # this_and_following: end the old series before the instance, start a new one from it.
    occurrence = occurrence_at(calendar, instance_start)
    stored = is_override(occurrence, stored_overrides(calendar))
    shown = exact_times(occurrence, base)
    length = series_length(base)
    follow = owned_copy(base, ("UID", "EXDATE", "RECURRENCE-ID"))
    follow.add("uid", new_uid())
    follow.pop("DTSTART")
    follow.pop("DTEND", None)
    # The occurrence's slot as the rule makes it (wall clock, even in a gap; even if it was moved on
    # its own): the new series repeats this wall-clock time, as the old one did.
    slot = _rule_slot(calendar, instance_start)
    wall = _duration(base)
    follow.add("dtstart", slot)
    follow.add("dtend", slot + wall if wall is not None else slot)
    rule = vRecur(dict(base["RRULE"]))
    if "COUNT" in rule:
        # The new series must end where the old one would have: turn COUNT into the last slot (an
        # occurrence's RECURRENCE-ID, not where an edit moved it).
        ends = [(o.get("RECURRENCE-ID") or o["DTSTART"]).dt
                for o in occurrences(calendar, as_utc(base["DTSTART"].dt, "UTC"), datetime(9999, 1, 1, tzinfo=UTC))]
        rule.pop("COUNT")
        last = max((as_utc(e, "UTC") for e in ends), default=as_utc(instance_start, "UTC"))
        # UNTIL has DTSTART's value type (RFC 5545 §3.3.10): a DATE for an all-day series.
        rule["UNTIL"] = [last if isinstance(slot, datetime) else max(e if not isinstance(e, datetime) else e.date() for e in ends)
                         if ends else instance_start]
    follow.pop("RRULE")
    follow.add("rrule", rule)
    _until_before(base, instance_start)
    pinned = _pin_first(follow, slot, shown, length) if changes.start is None and changes.end is None and not stored else None
    _apply(follow, changes)
    if pinned is not None:
        _apply(pinned, changes)
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
    _reach_edited(carried, base, changes, follow["DTSTART"].dt)
    shift = as_utc(follow["DTSTART"].dt, "UTC") - as_utc(slot, "UTC")
    if shift and "UNTIL" in follow["RRULE"]:
        # Moving the series later must not cut its last occurrence off.
        until = follow["RRULE"]["UNTIL"][0]
        follow["RRULE"]["UNTIL"] = [rrules.shift_until(until, slot, follow["DTSTART"].dt)]
    if changes.rrule:
        follow.pop("RRULE")
        follow.add("rrule", parse_rrule(changes.rrule))
    split = Calendar()
    split.add("prodid", "-//mcp-hub//calendar//EN")
    split.add("version", "2.0")
    split.add_component(follow)
    for override in carried + ([pinned] if pinned is not None else []):
        split.add_component(override)
    if changes.rrule:
        series_edits.fit_to_rule(split, move_start=changes.start is None)
    split.add_missing_timezones()
    return [calendar, split]


REACHED = {"title": "SUMMARY", "description": "DESCRIPTION", "location": "LOCATION", "attendees": "ATTENDEE"}
"""The fields a series change carries to its edited occurrences (`_reach_edited`), and their properties."""


def _reach_edited(carried: list[VEvent], base: Any, changes: EventChanges, addressed: datetime | date | None) -> None:
    """A series change reaches its edited occurrences: a "this and following" one those the new series carries
    (outside review cal29 #8: they kept the old value, the one addressed too), a `scope="all"` one every edited
    occurrence of the series (a moved occurrence kept the old title while the call answered success): each text
    field and the attendees it names, unless the occurrence had changed that field itself (differs from `base`,
    the series as it was) — its own value wins, as Google and Graph re-apply an exception's own changes over the
    new series; an invitee's own answer for the occurrence stays (outside review cal29b #3). The occurrence a
    split addressed (now at `addressed`, the new series' first slot) takes every field named, its own or not
    (cal29b #4). Times are the carry's (`series_edits.carry`)."""
    for override in carried:
        mine = addressed is not None and same_start(override["RECURRENCE-ID"].dt, addressed)
        named = {field: getattr(changes, field) for field, prop in REACHED.items()
                 if getattr(changes, field) is not None and (mine or _same_value(override.get(prop), base.get(prop), prop == "ATTENDEE"))}
        if named:
            answers = _own_answers(override)
            _apply(override, EventChanges(**named))
            for address in _attendees(override):
                if str(address).lower() in answers:  # an invitee's own answer for this occurrence stays
                    address.params["PARTSTAT"] = answers[str(address).lower()]


def _attendees(component: VEvent) -> list[Any]:
    """A component's ATTENDEE values as a list (icalendar gives one value bare, several as a list)."""
    raw = component.get("ATTENDEE")
    return raw if isinstance(raw, list) else [raw] if raw is not None else []


def _own_answers(override: VEvent) -> dict[str, str]:
    """Each attendee's PARTSTAT on an occurrence, by address (lowercase `mailto:`)."""
    return {str(a).lower(): a.params["PARTSTAT"] for a in _attendees(override) if "PARTSTAT" in getattr(a, "params", {})}


def _same_value(mine: Any, series: Any, fold: bool = False) -> bool:
    """Whether an occurrence's property is the series' (not its own change): compared as text, in any order; `fold`
    (attendees): without case, as addresses compare everywhere else (outside review cal30 #6: `MAILTO:B@x.test`
    another client wrote counted as the occurrence's own list)."""
    def text(value: Any) -> list[str]:
        out = [str(v) for v in value] if isinstance(value, list) else [] if value is None else [str(value)]
        return sorted(v.lower() for v in out) if fold else sorted(out)
    return text(mine) == text(series)


def _become_first_occurrence(calendar: Calendar) -> None:
    """A series losing its rule becomes its first remaining occurrence as it shows now: a deleted
    first one is skipped, an edited one keeps its edits (outside review: `rrule=""` brought back the
    deleted first occurrence and dropped the edited one). The rest of the series goes."""
    base = master(calendar)
    first = next(iter(recurring_ical_events.of(calendar).all()), None)
    if first is None:
        return
    uid = base["UID"]
    times = exact_times(first, base) if not is_override(first, stored_overrides(calendar)) else None
    for key in list(base.keys()):
        del base[key]
    base.add("uid", uid)
    for key, value in first.items():
        if key not in ("UID", "RECURRENCE-ID", "RRULE", "EXDATE", "RDATE", LENGTH_PROP):
            base[key] = deepcopy(value)  # its own objects, not the expansion's (see `ical.owned_copy`)
    if times is not None:
        pin_times(base, *times)  # as it showed, not the expansion's wall-clock fields


def remove(calendar: Calendar, scope: Scope, instance_start: datetime | date | None) -> Calendar | None:
    """Delete an occurrence, the rest of a series, or everything (None: delete the object).
    Idempotent: a "this" delete of an occurrence already excluded, or a "this and following" delete from a
    time the series already ends before, changes nothing and succeeds (a "this" delete past the series' end
    is `not_found`, also of an occurrence excluded before a later cut, as on Google and Graph). A "this and following" delete from an
    occurrence deleted before cuts there (the slot is the series' own), as Google and Graph do."""
    base = master(calendar)
    if scope == "all" or "RRULE" not in base:
        return None
    if instance_start is None:
        raise DomainError("invalid_argument", "give instance_start to delete one occurrence (or use scope='all')")
    excluded = any(same_start(value, instance_start) for value in series_edits.exdates(base))
    past_end = excluded and ends_before(calendar, instance_start)  # a slot past a later cut (its EXDATE stays)
    if scope == "this" and excluded and not past_end:
        return calendar  # deleted already (a retry after a lost answer): nothing more to do
    if scope == "this_and_following" and past_end:
        return calendar  # the series already ends before it: nothing to cut
    if past_end:  # "this" past the series' end: not_found saying it ends before, as Google and Graph answer
        excluded = False
    try:
        if not excluded:
            occurrence_at(calendar, instance_start)
    except DomainError as exc:
        if scope == "this_and_following" and (exc.body.details or {}).get("ends_before"):
            # The series already ends before it: the cut is in place (a retry after a lost answer), so it is
            # answered as the first was, as Google and Graph answer it (outside review cal28c #2).
            return calendar
        raise
    if scope == "this":
        base.add("exdate", _series_time(base, instance_start))
        for existing in list(calendar.subcomponents):
            rid = existing.get("RECURRENCE-ID") if existing.name == "VEVENT" else None
            if rid is not None and same_start(rid.dt, instance_start):
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
                   and same_start(c["RECURRENCE-ID"].dt, instance_start)]
    for component in targets:
        raw = component.get("ATTENDEE", [])
        addresses = raw if isinstance(raw, list) else [raw]
        match = [a for a in addresses if str(a).lower().removeprefix("mailto:") == email.lower()]
        if not match:
            raise DomainError("invalid_argument", f"{email} is not invited to this event")
        for address in match:
            address.params["PARTSTAT"] = PARTSTAT[response]
    return calendar
