"""RRULE <-> Microsoft Graph `patternedRecurrence`.

Graph does not take RRULE text: a series is a pattern (daily, weekly, absolute/relative monthly,
absolute/relative yearly; interval, daysOfWeek, dayOfMonth, month, index, firstDayOfWeek) and a
range (noEnd, endDate — an inclusive local date — or numbered). The RRULE subset that maps onto
that exactly is converted; anything else (BYHOUR, several month days, FREQ=HOURLY, BYMONTH outside
YEARLY, several BYDAY positions, ...) is refused with an error that names the part and says what to
write instead, rather than silently changing the schedule. As a last guard every pattern is expanded
as Graph documents it and compared with the RRULE (dateutil) over its first `CHECKED` occurrences:
any difference is refused too (outside review money19 #2: four rules were booked as other schedules).
"""

from __future__ import annotations

import calendar as _calendar
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from icalendar.prop import vRecur

from servers.kit.errors import DomainError

DAYS = {"MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday", "FR": "friday", "SA": "saturday", "SU": "sunday"}
CODES = {v: k for k, v in DAYS.items()}
INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
POSITION = {v: k for k, v in INDEX.items()}
SUPPORTED = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "UNTIL", "COUNT", "WKST"}
CHECKED = 100
"""Occurrences of the rule and of the Graph pattern compared before a rule is sent."""
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _refuse(why: str) -> DomainError:
    return DomainError("invalid_argument", f"Microsoft Graph cannot express this recurrence: {why}. It supports daily, "
                       "weekly (BYDAY), monthly and yearly (one BYMONTHDAY, or one BYDAY with a position 1-4 or -1) "
                       "rules with INTERVAL and UNTIL or COUNT", details={"field": "rrule"})


def _weekday(code: str) -> tuple[int | None, str]:
    """'2TU' -> (2, 'tuesday'); 'TU' -> (None, 'tuesday')."""
    sign_digits, day = code[:-2], code[-2:].upper()
    if day not in DAYS:
        raise _refuse(f"unknown day {code!r}")
    return (int(sign_digits) if sign_digits else None), DAYS[day]


def to_graph(rrule: str, start: datetime | date, zone: str) -> dict[str, Any]:
    """A Graph `patternedRecurrence` for `rrule` on a series starting at `start` (local, in `zone`)."""
    try:
        rule = vRecur.from_ical(rrule.removeprefix("RRULE:"))
        if "FREQ" not in rule:
            raise ValueError("no FREQ")
    except ValueError:
        raise DomainError("invalid_argument", f"rrule {rrule!r} is not an RFC 5545 RRULE", details={"field": "rrule"}) from None
    if extra := set(rule) - SUPPORTED:
        raise _refuse(f"{', '.join(sorted(extra))} is not supported")
    freq = rule["FREQ"][0]
    interval = int(rule.get("INTERVAL", [1])[0])
    first_day = start if isinstance(start, date) and not isinstance(start, datetime) else start.date()
    pattern: dict[str, Any] = {"interval": interval, "firstDayOfWeek": DAYS[rule.get("WKST", ["MO"])[0]]}
    by_day = [_weekday(d) for d in rule.get("BYDAY", [])]
    positions = [int(p) for p in rule.get("BYSETPOS", [])]
    month_days = [int(d) for d in rule.get("BYMONTHDAY", [])]
    if len(month_days) > 1 or len(positions) > 1 or len(rule.get("BYMONTH", [])) > 1:
        raise _refuse("only one BYMONTHDAY, BYSETPOS and BYMONTH value")
    _refuse_lossy(freq, interval, rule, by_day)
    if freq in ("DAILY", "WEEKLY"):
        if positions or month_days or any(p is not None for p, _ in by_day):
            raise _refuse(f"{freq} with positions or month days")
        if freq == "DAILY" and not by_day:
            pattern["type"] = "daily"
        else:
            pattern["type"] = "weekly"
            # a day named twice (BYDAY=MO,MO) is one day, as in RFC 5545: sent once
            pattern["daysOfWeek"] = list(dict.fromkeys(d for _, d in by_day)) or [DAYS[list(DAYS)[first_day.weekday()]]]
    elif freq in ("MONTHLY", "YEARLY"):
        kind = "Monthly" if freq == "MONTHLY" else "Yearly"
        if freq == "YEARLY":
            pattern["month"] = int(rule.get("BYMONTH", [first_day.month])[0])
        if by_day:
            position = positions[0] if positions else by_day[0][0]
            if len({d for _, d in by_day}) != len(by_day) or position not in INDEX or (positions and by_day[0][0] is not None):
                raise _refuse("a relative rule needs one position among 1, 2, 3, 4, -1")
            pattern.update(type=f"relative{kind}", daysOfWeek=[d for _, d in by_day], index=INDEX[position])
        else:
            pattern.update(type=f"absolute{kind}", dayOfMonth=month_days[0] if month_days else first_day.day)
            if pattern["dayOfMonth"] < 1:
                raise _refuse("negative BYMONTHDAY")
    else:
        raise _refuse(f"FREQ={freq}")
    span: dict[str, Any] = {"type": "noEnd", "startDate": first_day.isoformat(), "recurrenceTimeZone": zone}
    if "UNTIL" in rule:
        span.update(type="endDate", endDate=_last_day(rule["UNTIL"][0], start, zone).isoformat())
    elif "COUNT" in rule:
        span.update(type="numbered", numberOfOccurrences=int(rule["COUNT"][0]))
    _same_schedule(rule, pattern, span, start, zone)
    return {"pattern": pattern, "range": span}


def _refuse_lossy(freq: str, interval: int, rule: vRecur, by_day: list[tuple[int | None, str]]) -> None:
    """The rules Graph's patterns are known to change, each refused naming the part and what to write instead."""
    if rule.get("BYMONTH") and freq != "YEARLY":
        raise _refuse(f"BYMONTH with FREQ={freq} (Graph repeats it in every month); drop BYMONTH and end the series with "
                      "UNTIL, or create one series per month")
    if freq == "YEARLY" and not rule.get("BYMONTH") and (rule.get("BYMONTHDAY") or by_day):
        raise _refuse("FREQ=YEARLY with BYMONTHDAY or BYDAY but no BYMONTH (RFC 5545 repeats that in every month or week "
                      "of the year); write FREQ=MONTHLY with the same BYMONTHDAY/BYDAY, or add BYMONTH=<month> for once a year")
    if freq in ("MONTHLY", "YEARLY") and len(by_day) > 1 and any(p is not None for p, _ in by_day):
        raise _refuse("several BYDAY values with their own positions (e.g. 1MO,3WE: Graph takes one position for all of "
                      "them); create one series per weekday (BYDAY=1MO, then BYDAY=3WE)")
    if freq == "DAILY" and interval > 1 and by_day:
        raise _refuse(f"FREQ=DAILY;INTERVAL={interval} with BYDAY (Graph has no every-n-days-on-weekdays pattern); write "
                      "FREQ=WEEKLY;BYDAY=... (with INTERVAL for every n weeks), or FREQ=DAILY;INTERVAL=n without BYDAY")


def _same_schedule(rule: vRecur, pattern: dict[str, Any], span: dict[str, Any], start: datetime | date, zone: str) -> None:
    """Refuse unless `pattern` repeats on exactly the days the RRULE does (its first `CHECKED` occurrences,
    within its COUNT or UNTIL): the last guard against a conversion that changes the schedule."""
    local = start
    if isinstance(start, datetime) and start.tzinfo is not None:
        try:
            local = start.astimezone(ZoneInfo(zone))
        except (KeyError, ValueError):
            pass
    anchor = datetime.combine(local, datetime.min.time()) if not isinstance(local, datetime) else local.replace(tzinfo=None)
    bare = {k: v for k, v in rule.items() if k not in ("COUNT", "UNTIL")}
    limit = min(CHECKED, int(span["numberOfOccurrences"])) if span["type"] == "numbered" else CHECKED
    asked = [d.date() for d in islice(rrulestr(vRecur(bare).to_ical().decode(), dtstart=anchor), limit)]
    booked = list(islice(_graph_days(pattern, anchor.date()), limit))
    if span["type"] == "endDate":
        last = date.fromisoformat(span["endDate"])
        asked, booked = [d for d in asked if d <= last], [d for d in booked if d <= last]
    for index, (want, got) in enumerate(zip(asked, booked, strict=False)):
        if want != got:
            raise _refuse(f"its occurrence {index + 1} is on {want.isoformat()}, but Graph's closest pattern ({pattern['type']}) "
                          f"would put it on {got.isoformat()}; pick a rule it repeats exactly (a month day of 28 or less, "
                          "BYDAY=-1MO for a month's last Monday, no 29 February)")
    if len(asked) != len(booked):
        raise _refuse(f"Graph's closest pattern ({pattern['type']}) gives {len(booked)} occurrences where the rule gives {len(asked)}")


def _graph_days(pattern: dict[str, Any], first: date) -> Any:
    """The days a Graph pattern repeats on from `first` (its range's startDate), as Graph documents them:
    a relative pattern with several days takes the index-th day that is any of them; an absolute day past
    a month's end falls on its last day (as Outlook does; a rule skipping such months is then refused)."""
    kind, interval = pattern["type"], int(pattern.get("interval") or 1)
    days = {WEEKDAYS.index(d) for d in pattern.get("daysOfWeek") or []}
    # A year number, not `first` with its year replaced: `first` may be 29 February (recheck21d #5).
    end_year = min(first.year + 400 * interval, 9000)
    if kind == "daily":
        day, step = first, timedelta(days=interval)
        while day.year < end_year:
            yield day
            if date.max - day < step:
                return
            day += step
        return
    if kind == "weekly":
        week = first - timedelta(days=(first.weekday() - WEEKDAYS.index(pattern.get("firstDayOfWeek", "sunday"))) % 7)
        step = timedelta(weeks=interval)
        while week.year < end_year:
            for offset in range(7):
                day = week + timedelta(days=offset)
                if day.weekday() in days and day >= first:
                    yield day
            if date.max - week < step + timedelta(days=7):
                return
            week += step
        return
    months = interval if kind.endswith("Monthly") else 12 * interval
    month = (first.year * 12 + first.month - 1) if kind.endswith("Monthly") else first.year * 12 + int(pattern["month"]) - 1
    while month // 12 < end_year:
        year, number = divmod(month, 12)
        length = _calendar.monthrange(year, number + 1)[1]
        if kind.startswith("absolute"):
            found: date | None = date(year, number + 1, min(int(pattern["dayOfMonth"]), length))
        else:
            hits = [date(year, number + 1, d) for d in range(1, length + 1) if date(year, number + 1, d).weekday() in days]
            position = POSITION[pattern.get("index", "first")]
            found = hits[position - 1 if position > 0 else -1] if len(hits) >= abs(position) else None
        if found is not None and found >= first:
            yield found
        month += months


def _last_day(until: datetime | date, start: datetime | date, zone: str) -> date:
    """Graph's inclusive end date for an RRULE UNTIL: the local day of the last occurrence at or before UNTIL."""
    if not isinstance(until, datetime):
        return until
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    local = until.astimezone(tz) if until.tzinfo else until.replace(tzinfo=tz)
    if isinstance(start, datetime) and datetime.combine(local.date(), start.astimezone(tz).time(), tz) > local:
        return local.date() - timedelta(days=1)
    return local.date()


WEEKDAY_CODES = list(DAYS)


def _start_day(span: dict[str, Any]) -> date | None:
    """The series' first day (`range.startDate`), None when missing or unreadable."""
    try:
        return date.fromisoformat(span["startDate"]) if span.get("startDate") else None
    except ValueError:
        return None


def follow_start(pattern: dict[str, Any], old: date, new: date) -> dict[str, Any]:
    """`pattern` for a series whose first day moves from `old` to `new`: a weekday, day of month or month that was
    only `old`'s own (as `to_rrule` leaves it out) becomes `new`'s."""
    pattern = dict(pattern)
    kind = pattern.get("type", "")
    if kind == "weekly" and pattern.get("daysOfWeek") == [DAYS[WEEKDAY_CODES[old.weekday()]]]:
        pattern["daysOfWeek"] = [DAYS[WEEKDAY_CODES[new.weekday()]]]
    if kind.startswith("absolute") and int(pattern.get("dayOfMonth") or 0) == old.day:
        if kind.endswith("Yearly") and int(pattern.get("month") or 0) == old.month:
            pattern.update(month=new.month, dayOfMonth=new.day)
        elif kind.endswith("Monthly"):
            pattern["dayOfMonth"] = new.day
    return pattern


def to_rrule(recurrence: dict[str, Any] | None) -> list[str] | None:
    """The RRULE line for a Graph `patternedRecurrence` (None when there is none). A weekday, day of month or
    month that is only the series' first day's own is left out (RFC 5545 takes it from the start), as a rule
    written without it reads: so a whole-series move to another day carries it along, as on every backend
    (outside review cal28c #3). Graph cannot tell a caller's BYDAY=MO on a Monday start from a bare
    FREQ=WEEKLY: both follow such a move here (`graph_series.moved_range`)."""
    if not recurrence:
        return None
    pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type", "daily")
    parts = {"daily": ["FREQ=DAILY"], "weekly": ["FREQ=WEEKLY"]}.get(kind) or \
        [f"FREQ={'MONTHLY' if kind.endswith('Monthly') else 'YEARLY'}"]
    if (interval := int(pattern.get("interval") or 1)) != 1:
        parts.append(f"INTERVAL={interval}")
    days = [CODES[d] for d in pattern.get("daysOfWeek") or [] if d in CODES]
    first = _start_day(span)
    if kind.startswith("relative"):
        parts.append(f"BYDAY={','.join(days)}")
        parts.append(f"BYSETPOS={POSITION.get(pattern.get('index', 'first'), 1)}")
    elif kind == "weekly" and days and not (first and days == [WEEKDAY_CODES[first.weekday()]]):
        parts.append(f"BYDAY={','.join(days)}")
    if kind.endswith("Yearly") and pattern.get("month") and not (first and kind.startswith("absolute")
                                                                  and int(pattern["month"]) == first.month):
        parts.append(f"BYMONTH={pattern['month']}")
    if kind.startswith("absolute") and pattern.get("dayOfMonth") and not (first and int(pattern["dayOfMonth"]) == first.day):
        parts.append(f"BYMONTHDAY={pattern['dayOfMonth']}")
    if span.get("type") == "endDate" and span.get("endDate"):
        parts.append(f"UNTIL={span['endDate'].replace('-', '')}")
    elif span.get("type") == "numbered":
        parts.append(f"COUNT={span.get('numberOfOccurrences', 1)}")
    if kind == "weekly" and pattern.get("firstDayOfWeek") and CODES.get(pattern["firstDayOfWeek"]) not in (None, "MO"):
        parts.append(f"WKST={CODES[pattern['firstDayOfWeek']]}")
    return ["RRULE:" + ";".join(parts)]
