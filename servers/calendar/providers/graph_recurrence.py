"""RRULE <-> Microsoft Graph `patternedRecurrence`.

Graph does not take RRULE text: a series is a pattern (daily, weekly, absolute/relative monthly,
absolute/relative yearly; interval, daysOfWeek, dayOfMonth, month, index, firstDayOfWeek) and a
range (noEnd, endDate — an inclusive local date — or numbered). The RRULE subset that maps onto
that exactly is converted; anything else (BYHOUR, several month days, FREQ=HOURLY, ...) is refused
with an error that says what Graph can express, rather than silently changing the schedule.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from icalendar.prop import vRecur

from servers.kit.errors import DomainError

DAYS = {"MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday", "FR": "friday", "SA": "saturday", "SU": "sunday"}
CODES = {v: k for k, v in DAYS.items()}
INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
POSITION = {v: k for k, v in INDEX.items()}
SUPPORTED = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "UNTIL", "COUNT", "WKST"}


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
    if freq in ("DAILY", "WEEKLY"):
        if positions or month_days or any(p is not None for p, _ in by_day):
            raise _refuse(f"{freq} with positions or month days")
        if freq == "DAILY" and not by_day:
            pattern["type"] = "daily"
        else:
            pattern["type"] = "weekly"
            pattern["daysOfWeek"] = [d for _, d in by_day] or [DAYS[list(DAYS)[first_day.weekday()]]]
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
    return {"pattern": pattern, "range": span}


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


def to_rrule(recurrence: dict[str, Any] | None) -> list[str] | None:
    """The RRULE line for a Graph `patternedRecurrence` (None when there is none)."""
    if not recurrence:
        return None
    pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type", "daily")
    parts = {"daily": ["FREQ=DAILY"], "weekly": ["FREQ=WEEKLY"]}.get(kind) or \
        [f"FREQ={'MONTHLY' if kind.endswith('Monthly') else 'YEARLY'}"]
    if (interval := int(pattern.get("interval") or 1)) != 1:
        parts.append(f"INTERVAL={interval}")
    days = [CODES[d] for d in pattern.get("daysOfWeek") or [] if d in CODES]
    if kind.startswith("relative"):
        parts.append(f"BYDAY={','.join(days)}")
        parts.append(f"BYSETPOS={POSITION.get(pattern.get('index', 'first'), 1)}")
    elif kind == "weekly" and days:
        parts.append(f"BYDAY={','.join(days)}")
    if kind.endswith("Yearly") and pattern.get("month"):
        parts.append(f"BYMONTH={pattern['month']}")
    if kind.startswith("absolute") and pattern.get("dayOfMonth"):
        parts.append(f"BYMONTHDAY={pattern['dayOfMonth']}")
    if span.get("type") == "endDate" and span.get("endDate"):
        parts.append(f"UNTIL={span['endDate'].replace('-', '')}")
    elif span.get("type") == "numbered":
        parts.append(f"COUNT={span.get('numberOfOccurrences', 1)}")
    if kind == "weekly" and pattern.get("firstDayOfWeek") and CODES.get(pattern["firstDayOfWeek"]) not in (None, "MO"):
        parts.append(f"WKST={CODES[pattern['firstDayOfWeek']]}")
    return ["RRULE:" + ";".join(parts)]
