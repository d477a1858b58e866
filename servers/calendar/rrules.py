"""Validating RRULEs before anything is stored, and the cost bound every series must meet.

The iCalendar library reads any text as a rule (`hello world` became an empty `RRULE:`), and
expanding a series costs one step per occurrence from its first start — so a rule decides how slow
every later query is. The rules decided here, for every backend:

- Syntax is RFC 5545 §3.3.10: `KEY=VALUE` parts, known keys once each, FREQ required, COUNT and
  UNTIL not both, values in range, RFC combination rules (BYWEEKNO only with YEARLY, ...). An
  error names the bad part.
- A *dense* series (more than one occurrence a day is possible: FREQ=SECONDLY/MINUTELY/HOURLY, or
  several BYHOUR x BYMINUTE x BYSECOND times) must be bounded by COUNT or UNTIL, end within
  `DENSE_SPAN` of its start and have at most `MAX_DENSE_OCCURRENCES` occurrences.
- Any series: COUNT at most `MAX_COUNT`, INTERVAL at most `MAX_INTERVAL`.
- UNTIL is normalized as RFC 5545 requires: a UTC date-time for timed series (a date means the end
  of that day in the series' zone, a floating time is read in that zone), a date for all-day ones.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil.rrule import rrulestr

from servers.calendar.timeutil import zone
from servers.kit.errors import DomainError

FREQS = ("SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
SUB_DAILY = {"SECONDLY", "MINUTELY", "HOURLY"}
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_COUNT = 10_000
MAX_INTERVAL = 1_000
MAX_DENSE_OCCURRENCES = 1_000
DENSE_SPAN = timedelta(days=366)
NORMAL_SPAN = timedelta(days=100 * 365)
MAX_GAP = timedelta(days=40 * 366)
SUB_DAILY_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST"}
_INT_LISTS: dict[str, tuple[int, int, bool]] = {  # key: (low, high, may be negative)
    "BYSECOND": (0, 60, False), "BYMINUTE": (0, 59, False), "BYHOUR": (0, 23, False), "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True), "BYWEEKNO": (1, 53, True), "BYMONTH": (1, 12, False), "BYSETPOS": (1, 366, True),
}
_DAY = re.compile(r"^([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL = re.compile(r"^(\d{8})(T(\d{6})(Z?))?$")
EXAMPLE = "e.g. FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"


def _bad(part: str, why: str) -> DomainError:
    shown = part if len(part) <= 80 else part[:80] + "…"
    return DomainError("invalid_argument", f"rrule: {shown!r} {why} ({EXAMPLE})", details={"field": "rrule", "part": shown})


def _ints(key: str, value: str, part: str) -> list[int]:
    low, high, signed = _INT_LISTS[key]
    out = []
    for item in value.split(","):
        if not re.fullmatch(r"[+-]?\d{1,3}", item):
            raise _bad(part, f"needs comma-separated numbers {'±' if signed else ''}{low}..{high}")
        number = int(item)
        if not (low <= abs(number) <= high) or (number < 0 and not signed):
            raise _bad(part, f"has {item}, outside {'±' if signed else ''}{low}..{high}")
        out.append(number)
    return out


def parse(rule: str) -> dict[str, str]:
    """The rule's parts by key (upper-case), syntax and ranges checked."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        raise _bad(rule, "is empty")
    parts: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        value = value.strip().upper()
        if not sep or not key or not value:
            raise _bad(part, "is not KEY=VALUE")
        if key not in {"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST", *_INT_LISTS}:
            raise _bad(part, "is not an RRULE part (FREQ, UNTIL, COUNT, INTERVAL, BYSECOND, BYMINUTE, BYHOUR, BYDAY, "
                             "BYMONTHDAY, BYYEARDAY, BYWEEKNO, BYMONTH, BYSETPOS, WKST)")
        if key in parts:
            raise _bad(part, f"repeats {key}")
        if key == "FREQ" and value not in FREQS:
            raise _bad(part, f"must be one of {', '.join(FREQS)}")
        if key in ("COUNT", "INTERVAL"):
            high = MAX_COUNT if key == "COUNT" else MAX_INTERVAL
            if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= high:
                raise _bad(part, f"must be a whole number 1..{high}")
        if key == "UNTIL" and not _UNTIL.match(value):
            raise _bad(part, "must be a date (20261231) or a UTC date-time (20261231T170000Z)")
        if key == "WKST" and value not in DAYS:
            raise _bad(part, f"must be one of {', '.join(DAYS)}")
        if key == "BYDAY":
            for item in value.split(","):
                found = _DAY.match(item)
                if not found or (found.group(2) is not None and not 1 <= int(found.group(2)) <= 53):
                    raise _bad(part, f"has {item!r}: days are MO..SU, optionally with a position like 1MO or -1FR")
        if key in _INT_LISTS:
            _ints(key, value, part)
        parts[key] = value
    if "FREQ" not in parts:
        raise _bad(rule, "has no FREQ")
    _combinations(parts)
    return parts


def _combinations(parts: dict[str, str]) -> None:
    freq = parts["FREQ"]
    if "COUNT" in parts and "UNTIL" in parts:
        raise _bad(f"COUNT={parts['COUNT']};UNTIL={parts['UNTIL']}", "gives both COUNT and UNTIL; keep one")
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise _bad(f"BYWEEKNO={parts['BYWEEKNO']}", "only goes with FREQ=YEARLY")
    if "BYYEARDAY" in parts and freq in ("DAILY", "WEEKLY", "MONTHLY"):
        raise _bad(f"BYYEARDAY={parts['BYYEARDAY']}", f"does not go with FREQ={freq}")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise _bad(f"BYMONTHDAY={parts['BYMONTHDAY']}", "does not go with FREQ=WEEKLY")
    if "BYDAY" in parts and any(c.isdigit() for c in parts["BYDAY"]) and freq not in ("MONTHLY", "YEARLY"):
        raise _bad(f"BYDAY={parts['BYDAY']}", "positions like 1MO only go with FREQ=MONTHLY or YEARLY")
    positions = [int(m.group(1) + m.group(2)) for item in parts.get("BYDAY", "").split(",")
                 if (m := _DAY.match(item)) and m.group(2)]
    within_month = freq == "MONTHLY" or (freq == "YEARLY" and "BYMONTH" in parts)
    if within_month and any(abs(p) > 5 for p in positions):
        raise _bad(f"BYDAY={parts['BYDAY']}", "has a position beyond ±5: a month has at most five of each weekday "
                                              "(e.g. 1MO, -1FR)")
    if "BYSETPOS" in parts and not any(k.startswith("BY") and k != "BYSETPOS" for k in parts):
        raise _bad(f"BYSETPOS={parts['BYSETPOS']}", "needs another BY... part to pick from")


def dense(parts: dict[str, Any]) -> bool:
    """More than one occurrence a day is possible."""
    per_day = 1
    for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        value = parts.get(key)
        if value:
            per_day *= len(value.split(",")) if isinstance(value, str) else len(value)
    return str(parts["FREQ"]).upper() in SUB_DAILY or per_day > 1


def _until(value: str, start: datetime | date, tz: str) -> datetime | date:
    found = _UNTIL.match(value)
    assert found is not None, "parse() checked the form"
    day = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    if found.group(2) is None:
        return datetime.combine(day, time(23, 59, 59), zone(tz)).astimezone(UTC) if isinstance(start, datetime) else day
    clock = found.group(3)
    naive = datetime.combine(day, time(int(clock[:2]), int(clock[2:4]), int(clock[4:])))
    aware = naive.replace(tzinfo=UTC) if found.group(4) else naive.replace(tzinfo=zone(tz))
    return aware.astimezone(UTC) if isinstance(start, datetime) else aware.astimezone(zone(tz)).date()


MAX_SERIES_SPAN = timedelta(days=300 * 366)
"""How far past its start a series' UNTIL may be. A bound on the span, not on the year: a move carries UNTIL along with
the start, so the rule a moved series shows still reads back (outside reviews r36 #4, r37 #1: a year bound refused a
series ending near it once moved later); starts end in 2199 (`servers.kit.dates.YEARS`), so no UNTIL passes 2499."""


def validate(rule: str, start: datetime | date, tz: str) -> str:
    """The normalized rule text (without `RRULE:`), or `invalid_argument` naming what is wrong."""
    try:
        parts = parse(rule)
    except ValueError:  # a date that does not exist, e.g. UNTIL=20260231
        raise _bad(rule, "has an impossible value") from None
    if "UNTIL" in parts:
        try:
            until = _until(parts["UNTIL"], start, tz)
        except ValueError:
            raise _bad(f"UNTIL={parts['UNTIL']}", "is not a real date") from None
        first = start.astimezone(UTC) if isinstance(start, datetime) else start
        span = until - first  # type: ignore[operator]  # both dates, or both UTC date-times (`_until`)
        if span > MAX_SERIES_SPAN:  # 9999 for 2029: a move of the series then overflowed (outside review r35 #1)
            raise _bad(f"UNTIL={parts['UNTIL']}", f"is {span.days // 365} years after the series' start; a series ends "
                       f"within {MAX_SERIES_SPAN.days // 366} years of it (a typo in the year?), or give no UNTIL for one "
                       "that goes on")
        if until < first:  # type: ignore[operator]
            raise _bad(f"UNTIL={parts['UNTIL']}", f"ends the series before its first start ({first.isoformat()})")
        parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%SZ") if isinstance(until, datetime) else until.strftime("%Y%m%d")
    order = ["FREQ", "INTERVAL", "COUNT", "UNTIL", "BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYHOUR",
             "BYMINUTE", "BYSECOND", "BYSETPOS", "WKST"]
    text = ";".join(f"{key}={parts[key]}" for key in order if key in parts)
    try:
        _check_cost(text, parts, start)
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:  # never `internal` for any rule text
        raise _bad(text, f"cannot be expanded ({type(exc).__name__})") from None
    return text


def _check_cost(text: str, parts: dict[str, str], start: datetime | date) -> None:
    """Refuse rules whose expansion would be slow for every later query (see the module rules)."""
    freq = parts["FREQ"]
    if freq in SUB_DAILY and (extra := sorted(set(parts) - SUB_DAILY_PARTS)):
        raise _bad(f"{extra[0]}={parts[extra[0]]}", f"does not go with FREQ={freq} (expanding it is slow); for several times "
                                                    "a day use FREQ=DAILY with BYHOUR/BYMINUTE and COUNT or UNTIL")
    first = start.replace(tzinfo=None) if isinstance(start, datetime) else datetime.combine(start, time())
    core = ";".join(p for p in text.split(";") if not p.startswith(("COUNT=", "UNTIL=")))
    local = text
    if isinstance(start, datetime) and "UNTIL" in parts:  # dateutil wants UNTIL in the (naive) start's wall clock
        until_utc = datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        local = text.replace(parts["UNTIL"], until_utc.astimezone(start.tzinfo).strftime("%Y%m%dT%H%M%S"))
    try:
        series = rrulestr(local, dtstart=first)
        if freq not in SUB_DAILY:
            _check_recurs(core, first)
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:  # dateutil's own limits
        raise _bad(text, f"cannot be expanded ({type(exc).__name__}: {str(exc)[:120]})") from None
    until = series._until  # noqa: SLF001 — dateutil keeps the parsed UNTIL only here
    if dense(parts):
        if "COUNT" not in parts and "UNTIL" not in parts:
            raise _bad(text, f"repeats more than once a day without end: add COUNT (at most {MAX_DENSE_OCCURRENCES}) or "
                             f"UNTIL (within {DENSE_SPAN.days} days)")
        if until is not None and until > first + DENSE_SPAN + timedelta(days=1):
            raise _bad(f"UNTIL={parts['UNTIL']}", f"is more than {DENSE_SPAN.days} days after the start, which a series "
                                                  "repeating several times a day may not be")
        count = int(parts.get("COUNT", MAX_DENSE_OCCURRENCES + 1))
        window = series.replace(count=None, until=min(until or first + DENSE_SPAN, first + DENSE_SPAN))
        found = sum(1 for _ in itertools.islice(window, min(count, MAX_DENSE_OCCURRENCES + 1)))
        if found > MAX_DENSE_OCCURRENCES or ("COUNT" in parts and count > MAX_DENSE_OCCURRENCES):
            raise _bad(text, f"has more than {MAX_DENSE_OCCURRENCES} occurrences; a series repeating several times a day "
                             f"may have at most {MAX_DENSE_OCCURRENCES}")
        if "COUNT" in parts and found < count:
            raise _bad(f"COUNT={count}", f"is not reached within {DENSE_SPAN.days} days of the start; a series repeating "
                                         "several times a day must end within that")
    elif "COUNT" in parts:  # a COUNT that takes centuries would make splitting the series walk to year 9999
        count = int(parts["COUNT"])
        reached = sum(1 for _ in itertools.islice(series.replace(count=None, until=first + NORMAL_SPAN), count))
        if reached < count:
            raise _bad(f"COUNT={count}", f"is not reached within {NORMAL_SPAN.days // 365} years; give fewer occurrences or "
                                         "an UNTIL")


def _check_recurs(core: str, first: datetime) -> None:
    """The rule matches again within `MAX_GAP` of its start. dateutil looks for a match until year
    9999 however long it takes (UNTIL does not stop it), so a rule that never matches (e.g.
    BYMONTH=2;BYMONTHDAY=30) would make every query slow. The Gregorian calendar repeats every 400
    years, so the search runs on a copy moved (by whole 400-year cycles) close to year 9999, where
    the library's own end bounds it."""
    cycles = (9999 - 440 - first.year) // 400
    moved = first.replace(year=first.year + 400 * max(cycles, 0))
    following = rrulestr(core, dtstart=moved).after(moved)
    if following is None or following - moved > MAX_GAP:
        raise _bad(core, f"matches no date within {MAX_GAP.days // 365} years of the start; check the BY... parts")


def expandable(rule: Any, start: datetime | date) -> bool:
    """Whether a stored series meets today's cost bound (older data may not): dense series need
    COUNT ≤ `MAX_DENSE_OCCURRENCES` or an UNTIL within `DENSE_SPAN`, sub-daily ones no BY parts
    but BYDAY, any series COUNT ≤ `MAX_COUNT`."""
    parts = {str(k).upper(): v for k, v in dict(rule).items()}
    freq = str((parts.get("FREQ") or ["DAILY"])[0]).upper()
    count_value = parts.get("COUNT")
    count = int(count_value[0]) if isinstance(count_value, list) and count_value else None
    if (count is not None and count > MAX_COUNT) or (freq in SUB_DAILY and set(parts) - SUB_DAILY_PARTS):
        return False
    if not dense(parts | {"FREQ": freq}):
        return True
    if count is not None:
        return count <= MAX_DENSE_OCCURRENCES
    until = (parts.get("UNTIL") or [None])[0]
    if until is None:
        return False
    first = start if isinstance(start, datetime) else datetime.combine(start, time())
    last = until if isinstance(until, datetime) else datetime.combine(until, time())
    return last.replace(tzinfo=None) - first.replace(tzinfo=None) <= DENSE_SPAN + timedelta(days=2)


def anchored(rule: str, start: datetime | date, pattern_only: bool = False) -> Any | None:
    """`rule` as a dateutil rule anchored at `start` (a date as its midnight), which it need not
    match; None when dateutil cannot read it here (the caller then leaves things as stored). An
    UNTIL of the other kind than `start` is read as RFC 5545 means it (a DATE UNTIL of a timed
    series: the end of that day in the start's zone; outside review writes28 #4: a Graph series,
    whose UNTIL is always a date, was "unreadable" and skipped every check). `pattern_only`
    drops COUNT and UNTIL: which times the rule repeats on, whatever its range."""
    anchor = start if isinstance(start, datetime) else datetime(start.year, start.month, start.day)
    parts = [p for p in rule.removeprefix("RRULE:").split(";") if p]
    kept = []
    for part in parts:
        key, _, value = part.partition("=")
        key = key.upper()
        if pattern_only and key in ("COUNT", "UNTIL"):
            continue
        if key == "UNTIL":
            value = _until_for(value, start)
            if value is None:
                return None
        kept.append(f"{key}={value}")
    try:
        return rrulestr(";".join(kept), dtstart=anchor)
    except (ValueError, TypeError):
        return None


def _until_for(value: str, start: datetime | date) -> str | None:
    """An UNTIL value of `start`'s kind (dateutil refuses a date against a time and an aware UNTIL
    against a naive start)."""
    found = _UNTIL.match(value.strip())
    if found is None:
        return None
    tz = getattr(start.tzinfo, "key", None) if isinstance(start, datetime) else None
    try:
        until = _until(value.strip(), start, tz or "UTC")
    except ValueError:
        return None
    if isinstance(until, datetime):
        if isinstance(start, datetime) and start.tzinfo is None:
            return until.replace(tzinfo=None).strftime("%Y%m%dT%H%M%S")
        return until.strftime("%Y%m%dT%H%M%SZ")
    return until.strftime("%Y%m%dT235959")  # a date start is anchored at its (naive) midnight


def shift_until(until: datetime | date, old_start: datetime | date, new_start: datetime | date) -> datetime | date:
    """The UNTIL of a series moved from `old_start` to `new_start`, so that it keeps its number of
    occurrences: by the instants' difference when both starts are times, else by the local days'
    (outside review writes28 #2, #3: an all-day or provider series moved later lost its last occurrence). An UNTIL
    the move would carry past the years Python has (one stored before UNTIL was bounded) is `invalid_argument`."""
    try:
        return _shifted_until(until, old_start, new_start)
    except OverflowError:
        raise DomainError("invalid_argument", f"rrule: the series ends {until.isoformat()}, which cannot move with it; give "
                          f"rrule with an UNTIL within {MAX_SERIES_SPAN.days // 366} years of the new start (or none) in the "
                          "same call", details={"field": "rrule"}) from None


def _shifted_until(until: datetime | date, old_start: datetime | date, new_start: datetime | date) -> datetime | date:
    if isinstance(old_start, datetime) and isinstance(new_start, datetime) and isinstance(until, datetime):
        return until + (new_start.astimezone(UTC) - old_start.astimezone(UTC))
    old_day = old_start.date() if isinstance(old_start, datetime) else old_start
    new_day = new_start.date() if isinstance(new_start, datetime) else new_start
    if isinstance(until, datetime) and not isinstance(new_start, datetime):  # timed -> all-day: a DATE (RFC 5545 §3.3.10)
        local = until.astimezone(old_start.tzinfo) if isinstance(old_start, datetime) and old_start.tzinfo else until
        return local.date() + (new_day - old_day)
    if not isinstance(until, datetime) and isinstance(new_start, datetime) and not isinstance(old_start, datetime):
        # all-day -> timed: the end of that (moved) day where the series now is, as a DATE-TIME
        return datetime.combine(until + (new_day - old_day), time(23, 59, 59), new_start.tzinfo)
    return until + (new_day - old_day)


def shift_rule_until(rule: str, old_start: datetime | date, new_start: datetime | date) -> str:
    """`rule` (RRULE text, with or without `RRULE:`) with its UNTIL moved by `shift_until`, in the form
    it had (a DATE stays a DATE, a DATE-TIME is written in UTC), or of the new start's type when the series
    changes between timed and all-day."""
    prefix = "RRULE:" if rule.startswith("RRULE:") else ""
    out = []
    for part in rule.removeprefix("RRULE:").split(";"):
        key, _, value = part.partition("=")
        found = _UNTIL.match(value.strip()) if key.upper() == "UNTIL" else None
        if found is not None:
            value = value.strip()
            day = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
            moved: datetime | date
            if found.group(2) is None:
                moved = shift_until(day, old_start, new_start)
            else:
                clock = found.group(3)
                naive = datetime.combine(day, time(int(clock[:2]), int(clock[2:4]), int(clock[4:])))
                tz = getattr(old_start.tzinfo, "key", None) if isinstance(old_start, datetime) else None
                moment = naive.replace(tzinfo=UTC) if found.group(4) else naive.replace(tzinfo=zone(tz or "UTC"))
                moved = shift_until(moment, old_start, new_start)
            # the UNTIL takes the new start's value type (RFC 5545 §3.3.10): a DATE for an all-day series
            value = moved.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") if isinstance(moved, datetime) and moved.tzinfo else \
                moved.strftime("%Y%m%dT%H%M%S") if isinstance(moved, datetime) else moved.strftime("%Y%m%d")
            part = f"{key}={value}"
        out.append(part)
    return prefix + ";".join(out)


def first_at_or_after(rule: Any, value: datetime | date) -> datetime | date | None:
    """The first occurrence of an `anchored` rule at or after `value`, of `value`'s kind (None: none)."""
    all_day = not isinstance(value, datetime)
    moment = datetime(value.year, value.month, value.day) if all_day else value
    try:
        found = rule.after(moment, inc=True)
    except TypeError:  # naive against aware: a value of another kind than the series
        return None
    if found is None:
        return None
    return found.date() if all_day else found


def missing_occurrence(series_id: str, instance_start: datetime | date, ended: bool) -> DomainError:
    """`not_found` for an occurrence the series does not have. `ended`: the series now ends before it, so a
    "this and following" change sent again after a lost answer is told it already landed (outside review
    cal28 #5), instead of only that the occurrence is missing."""
    text = f"the series {series_id} has no occurrence starting {instance_start}"
    if ended:
        text += ("; the series now ends before that time: if a \"this and following\" change was already sent for it, it "
                 "landed, and the following occurrences are a new series (list_events from that time shows it)")
    return DomainError("not_found", text, details={"series": series_id, "ends_before": ended})

