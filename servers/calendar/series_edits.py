"""Keeping a series' edited (RECURRENCE-ID overrides) and deleted (EXDATE) occurrences attached when
the series moves: `update_event` scope "all" with a new start, and the split-off part of a
"this_and_following" edit. Each RECURRENCE-ID and EXDATE shifts like the occurrence it names. When
the rule itself changes, those the new rule no longer has are dropped (`fit_to_rule`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from icalendar import Calendar
from icalendar import Event as VEvent

from servers.calendar import rrules
from servers.calendar.timeutil import as_utc, normalized, same_start, storable
from servers.kit.errors import DomainError


def exdates(component: VEvent) -> list[datetime | date]:
    raw = component.get("EXDATE")
    blocks = raw if isinstance(raw, list) else ([raw] if raw else [])
    return [d.dt for block in blocks for d in block.dts]


def overrides(calendar: Calendar) -> list[VEvent]:
    return [c for c in calendar.walk("VEVENT") if "RECURRENCE-ID" in c]


def at_or_after(value: datetime | date, mark: datetime | date) -> bool:
    if isinstance(value, datetime) == isinstance(mark, datetime) and not isinstance(value, datetime):
        return value >= mark
    return as_utc(value, "UTC") >= as_utc(mark, "UTC")


def shifter(old: datetime | date, new: datetime | date) -> Any:
    """Maps an original occurrence start of a series starting at `old` to the same occurrence of the
    series moved to `new`: the same wall-clock delta in the new start's zone (what RRULE repeats)."""
    if isinstance(old, datetime) and isinstance(new, datetime) and old.tzinfo is not None and new.tzinfo is not None:
        delta = new.replace(tzinfo=None) - old.replace(tzinfo=None)

        def timed(value: datetime | date) -> datetime | date:
            if not isinstance(value, datetime):
                return value
            local = value.astimezone(old.tzinfo) if value.tzinfo else value  # type: ignore[union-attr]
            return storable((local.replace(tzinfo=None) + delta).replace(tzinfo=new.tzinfo))
        return timed
    def day(value: datetime | date) -> date:
        return value.date() if isinstance(value, datetime) else value

    days = day(new) - day(old)  # a switch between timed and all-day moves by local days (nothing is carried then)
    return lambda value: value + days if not isinstance(value, datetime) else value


def carry(overrides: list[VEvent], exdates: list[datetime | date], old: datetime | date, target: VEvent,
           keep: list[VEvent], uid: str) -> None:
    """Moves edited (`overrides`) and deleted (`exdates`) occurrences along with a series whose start
    moved from `old` to `target`'s DTSTART: each RECURRENCE-ID and EXDATE shifts like the occurrence
    it names; an override's own times shift too unless it had been moved on its own (its DTSTART
    differs from its RECURRENCE-ID), then it stays where it was put. Overrides go to `keep`."""
    new = target["DTSTART"].dt
    if isinstance(old, datetime) != isinstance(new, datetime):
        if overrides or exdates:
            raise DomainError("invalid_argument", "changing a series between timed and all-day would lose its "
                              f"{len(overrides)} edited and {len(exdates)} deleted occurrences; delete the series and "
                              "create a new one instead", details={"field": "start"})
        return
    shift = shifter(old, new)
    for value in exdates:
        target.add("exdate", shift(value))
    for override in overrides:
        rid = override["RECURRENCE-ID"].dt
        independent = not same_start(override["DTSTART"].dt, rid)
        override.pop("RECURRENCE-ID")
        override.add("recurrence-id", shift(rid))
        override.pop("UID")
        override.add("uid", uid)
        if not independent:
            _follow_slot(override, override["RECURRENCE-ID"].dt)
        keep.append(override)


def _follow_slot(override: VEvent, slot: datetime | date) -> None:
    """An override that kept its slot, moved to its new slot `slot`: starting at that instant (a gap
    time moved forward by the gap) and lasting exactly as long as it did, so a DST day on either
    side never stretches or cuts it."""
    start = override["DTSTART"].dt
    end = override["DTEND"].dt if "DTEND" in override else None
    if isinstance(start, datetime) and isinstance(slot, datetime) and start.tzinfo is not None and slot.tzinfo is not None:
        moved = normalized(slot)
        new_end = None if end is None else storable((moved.astimezone(UTC) + (as_utc(end, "UTC") - as_utc(start, "UTC")))
                                                    .astimezone(moved.tzinfo))
        new_start = storable(moved)
    else:
        days = slot - start if not isinstance(slot, datetime) and not isinstance(start, datetime) else None
        if days is None:
            return
        new_start, new_end = slot, None if end is None else end + days
    override.pop("DTSTART")
    override.add("dtstart", new_start)
    if new_end is not None:
        override.pop("DTEND")
        override.add("dtend", new_end)


def _rule_of(base: VEvent) -> Any | None:
    return rrules.anchored(base["RRULE"].to_ical().decode(), base["DTSTART"].dt)


def _is_occurrence(rule: Any, value: datetime | date) -> bool:
    return rrules.first_at_or_after(rule, value) == value


def fit_to_rule(calendar: Calendar, move_start: bool) -> None:
    """After a series' RRULE changed: drop the edited (RECURRENCE-ID) and deleted (EXDATE)
    occurrences the new rule no longer has, and — with `move_start`, when no start was given — move
    DTSTART (and DTEND with it) to the new rule's first occurrence on or after it, since iCalendar
    makes DTSTART an occurrence whatever the rule says (outside review: a weekly Monday series
    changed to Tuesdays kept its first Monday and its edited Mondays)."""
    base = next(c for c in calendar.walk("VEVENT") if "RECURRENCE-ID" not in c)
    rule = _rule_of(base)
    if rule is None:
        return
    start = base["DTSTART"].dt
    if move_start and not _is_occurrence(rule, start):
        first = rrules.first_at_or_after(rule, start)
        if first is not None:
            moved = storable(first)
            if "DTEND" in base:
                end = base["DTEND"].dt
                length = (end.replace(tzinfo=None) - start.replace(tzinfo=None)) if isinstance(end, datetime) else end - start
                base.pop("DTEND")
                base.add("dtend", moved + length if not isinstance(first, datetime) else storable(first + length))
            base.pop("DTSTART")
            base.add("dtstart", moved)
            rule = _rule_of(base)
            if rule is None:
                return
    kept = [value for value in exdates(base) if _is_occurrence(rule, value)]
    base.pop("EXDATE", None)
    for value in kept:
        base.add("exdate", value)
    for override in overrides(calendar):
        if not _is_occurrence(rule, override["RECURRENCE-ID"].dt):
            calendar.subcomponents.remove(override)
