"""Expanding stored iCalendar series for one query, with a bound on the work.

Each occurrence costs the same whoever asked, so a query expands at most `MAX_PER_QUERY`
occurrences, and `MAX_PER_SERIES` of any one series. New series are validated to fit
(`rrules.validate`); this bound protects queries from older data and from many dense series
together. Single events go first (they are cheap), then series in start order. A series that does
not fit the budget, or whose rule is over today's cost bound, is not expanded but reported: in
`list_events` as `truncated` with a note, in free/busy as busy for its whole span within the range
(its owner and attendees may be busy at any time there) — never as free time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from icalendar import Calendar

from servers.calendar import ical, rrules
from servers.calendar.model import Event
from servers.calendar.timeutil import as_utc

MAX_PER_SERIES = 1_000
MAX_PER_QUERY = 2_000
MAX_WALK = 20_000  # occurrences walked to find where a COUNT series ends (new rules have COUNT <= 10,000)
STEP = {"SECONDLY": timedelta(seconds=1), "MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1)}


@dataclass
class Skipped:
    """A series left unexpanded (or cut short) in a query's range."""

    uid: str
    title: str
    calendar_id: str
    people: set[str]  # lower-cased calendar id and attendee addresses
    busy_from: datetime  # conservative: everything from here to busy_until may be busy
    busy_until: datetime
    reason: str


@dataclass
class Expansion:
    events: list[Event] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def notes(self) -> list[str]:
        return [f"series {s.uid} ({s.title[:60]!r}) from {s.busy_from.isoformat()}: {s.reason}" for s in self.skipped]


def _people(calendar: Calendar, calendar_id: str) -> set[str]:
    people = {calendar_id.lower()}
    for component in calendar.walk("VEVENT"):
        raw = component.get("ATTENDEE", [])
        for address in raw if isinstance(raw, list) else [raw]:
            people.add(str(address).lower().removeprefix("mailto:"))
    return people


def _last_of_count(master: ical.VEvent, count: int) -> datetime | date | None:
    """The start of a COUNT-bounded series' last occurrence (None if walking there would take more
    than `MAX_WALK` steps, for older data: the callers then use a coarser upper bound)."""
    if count > MAX_WALK:
        return None
    first = master["DTSTART"].dt
    naive = first.replace(tzinfo=None) if isinstance(first, datetime) else datetime.combine(first, datetime.min.time())
    try:
        rule = rrulestr(master["RRULE"].to_ical().decode(), dtstart=naive)
        last = None
        for last in itertools.islice(rule, count):
            pass
    except (ValueError, TypeError, OverflowError, IndexError, KeyError):
        return None
    if last is None:
        return None
    if isinstance(first, datetime):
        return last.replace(tzinfo=first.tzinfo)
    return last.date()


def _span_end(master: ical.VEvent, tz: str, end: datetime) -> datetime:
    """The latest a series can reach inside the range (an upper bound): its UNTIL, its COUNT of
    plain sub-daily steps, or the span a dense series is allowed — plus one occurrence's length."""
    rule = master["RRULE"]
    first = master["DTSTART"].dt
    length = as_utc((master.get("DTEND") or master["DTSTART"]).dt, tz) - as_utc(first, tz)
    until = (rule.get("UNTIL") or [None])[0]
    freq = str((rule.get("FREQ") or [""])[0]).upper()
    count = (rule.get("COUNT") or [None])[0]
    if until is not None:
        last = as_utc(until, tz)
    elif count is not None and (walked := _last_of_count(master, int(count))) is not None:
        last = as_utc(walked, tz)
    elif count is not None and freq in STEP and set(rule) <= {"FREQ", "INTERVAL", "COUNT", "WKST"}:
        last = as_utc(first, tz) + STEP[freq] * int((rule.get("INTERVAL") or [1])[0]) * (int(count) - 1)
    elif count is not None and rrules.dense({k: v for k, v in rule.items()} | {"FREQ": freq}):
        last = as_utc(first, tz) + rrules.DENSE_SPAN
    else:
        return end
    return min(end, last + length)


def expand(objects: list[tuple[str, str, str, str]], provider: str, start: datetime, end: datetime) -> Expansion:
    """Occurrences in [start, end) of (calendar_id, iCalendar text, etag, calendar zone) objects."""
    parsed = [(calendar_id, ical.load(text), etag, tz) for calendar_id, text, etag, tz in objects]
    parsed.sort(key=lambda item: ("RRULE" in ical.master(item[1]), as_utc(ical.master(item[1])["DTSTART"].dt, item[3])))
    out = Expansion()
    budget = MAX_PER_QUERY
    for calendar_id, calendar, etag, tz in parsed:
        series = ical.master(calendar)
        recurring = "RRULE" in series
        reason = None
        if recurring and not rrules.expandable(series["RRULE"], series["DTSTART"].dt):
            reason = "its rule repeats too often to expand (it predates today's limits); shown as busy for its whole span"
        elif recurring and budget < MAX_PER_SERIES:
            reason = (f"this query reached its limit of {MAX_PER_QUERY} occurrences; narrow the range to see it "
                      "(free/busy counts it as busy for its whole span)")
        if reason is not None:
            first = max(start, as_utc(series["DTSTART"].dt, tz))
            out.skipped.append(Skipped(str(series["UID"]), str(series.get("SUMMARY", "")), calendar_id, _people(calendar, calendar_id),
                                       first, _span_end(series, tz, end), reason))
            continue
        try:
            found = sorted(ical.occurrences(calendar, *_asked(series, start, end, tz)), key=lambda c: as_utc(c["DTSTART"].dt, tz))
            if len(found) > MAX_PER_SERIES:  # only older data can get here
                cut = as_utc(found[MAX_PER_SERIES]["DTSTART"].dt, tz)
                out.skipped.append(Skipped(str(series["UID"]), str(series.get("SUMMARY", "")), calendar_id, _people(calendar, calendar_id),
                                           cut, _span_end(series, tz, end),
                                           f"more than {MAX_PER_SERIES} occurrences in this range; the rest is not listed"))
                found = found[:MAX_PER_SERIES]
            lines = ical.recurrence_of(series)
            stored = ical.overrides(calendar) if recurring else set()
            events = [ical.to_event(o, calendar_id, provider, tz, etag, series, lines, ical.is_override(o, stored)) for o in found]
            events = [e for e in events if _overlaps(e, start, end, tz)]
        except (OverflowError, ValueError):
            # times whose arithmetic leaves the years Python has (an event ending in 9999, written before that was
            # refused, or by another CalDAV client): one such object made every read of its calendar fail (outside
            # review user34 #1); it is reported, and busy for the whole range, as a series too costly to expand
            out.skipped.append(Skipped(str(series.get("UID", "")), str(series.get("SUMMARY", "")), calendar_id,
                                       _people(calendar, calendar_id), start, end,
                                       "its times cannot be expanded (a date far outside the years 1900-2199, or a span "
                                       "of thousands of years): change or delete it; shown as busy for the whole range"))
            continue
        budget -= len(events)
        out.events.extend(events)
    return out


def _asked(series: ical.VEvent, start: datetime, end: datetime, tz: str) -> tuple[datetime, datetime]:
    """The range to ask the expansion library for; what it finds is then filtered exactly (`_overlaps`).

    It picks occurrences by their wall-clock ends, which a DST change can put up to `ical.DST_SLACK`
    before the exact ones, so it is asked from that much earlier. It reads a DATE (an all-day event)
    or a time without zone in the zone of the range it is given: such a series is asked with the range
    as wall-clock times in the calendar's zone, so an all-day event covers its calendar's local day
    whatever zone the query came in (outside review writes17 #3: a UTC range missed a Sydney all-day
    event before 10:00 local)."""
    first = series["DTSTART"].dt
    if isinstance(first, datetime) and first.tzinfo is not None:
        return start - ical.DST_SLACK, end
    zone = ZoneInfo(tz)
    return ((start.astimezone(zone) - ical.DST_SLACK).replace(tzinfo=None),
            (end.astimezone(zone) + ical.DST_SLACK).replace(tzinfo=None))


def _overlaps(event: Event, start: datetime, end: datetime, tz: str) -> bool:
    """Whether an occurrence found in the wider range `_asked` reaches into [start, end), by its exact times."""
    begins = event.start.utc or as_utc(event.start.date, tz)  # type: ignore[arg-type]
    ends = event.end.utc or as_utc(event.end.date, tz)  # type: ignore[arg-type]
    return begins < end and (ends > start or (ends == begins and begins >= start))
