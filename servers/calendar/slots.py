"""Free/busy arithmetic and slot finding, as pure functions over UTC intervals.

A slot is offered only if, for every participant, it lies inside their working hours (in their
own zone, DST included) and, widened by the buffer on both sides, touches none of their busy
intervals.
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from servers.calendar.model import WorkingHours
from servers.calendar.timeutil import zone

Span = tuple[datetime, datetime]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def merge(intervals: list[Span]) -> list[Span]:
    """Sorted, non-overlapping union of intervals."""
    out: list[Span] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def working_windows(hours: WorkingHours, start: datetime, end: datetime) -> list[Span]:
    """The participant's working hours between two instants, as UTC intervals."""
    tz = zone(hours.zone)
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    open_h, open_m = map(int, hours.start.split(":"))
    close_h, close_m = map(int, hours.end.split(":"))
    windows: list[Span] = []
    day = first
    while day <= last:
        if DAYS[day.weekday()] in hours.days:
            opening = datetime.combine(day, time(open_h, open_m), tz)
            closing = datetime.combine(day + timedelta(days=1), time(0, 0), tz) if (close_h, close_m) == (24, 0) else \
                datetime.combine(day, time(close_h, close_m), tz)
            if closing > opening:
                windows.append((opening.astimezone(UTC), closing.astimezone(UTC)))
        day += timedelta(days=1)
    return merge(windows)


def _inside(windows: list[Span], start: datetime, end: datetime) -> bool:
    index = bisect.bisect_right(windows, (start, datetime.max.replace(tzinfo=UTC))) - 1
    return index >= 0 and windows[index][0] <= start and end <= windows[index][1]


def find_slots(
    busy: dict[str, list[Span]],
    hours: dict[str, WorkingHours],
    window_start: datetime,
    window_end: datetime,
    duration: timedelta,
    buffer: timedelta = timedelta(0),
    granularity: timedelta = timedelta(minutes=15),
    max_results: int = 10,
    grid_zones: list[str] | None = None,
) -> list[Span]:
    """Free slots for everyone, earliest first. Slot starts sit on multiples of `granularity` on a
    local clock: of `grid_zones` (the zone the caller reads the slots in) or of a participant's
    working-hours zone, so a whole free local hour in a +05:30 or +05:45 zone is offered (UTC
    multiples would all start at :30 or :15 there)."""
    merged = {p: merge(spans) for p, spans in busy.items()}
    starts = {p: [s for s, _ in spans] for p, spans in merged.items()}
    windows = {p: working_windows(h, window_start, window_end) for p, h in hours.items()}
    step = int(granularity.total_seconds())
    zones = [zone(name) for name in dict.fromkeys([*(grid_zones or []), *(h.zone for h in hours.values())] or ["UTC"])]
    candidate = on_grid(window_start, step, zones)
    found: list[Span] = []
    while candidate + duration <= window_end and len(found) < max_results:
        end = candidate + duration
        ok = all(_inside(w, candidate, end) for w in windows.values()) and all(
            _free(merged[p], starts[p], candidate - buffer, end + buffer) for p in merged)
        if ok:
            found.append((candidate, end))
            candidate = on_grid(end + buffer, step, zones)
        else:
            candidate = on_grid(candidate + timedelta(seconds=1), step, zones)
    return found


def on_grid(moment: datetime, step: int, zones: list[ZoneInfo]) -> datetime:
    """The first instant at or after `moment` whose wall-clock time in one of `zones` is a multiple
    of `step` seconds (counted from midnight 1970-01-01 on that clock, as UTC multiples were)."""
    return min(_local_grid(moment, step, tz) for tz in zones)


def _local_grid(moment: datetime, step: int, tz: ZoneInfo) -> datetime:
    base = math.ceil(moment.timestamp())
    first = _offset(base, tz)
    best: int | None = None
    # The offset at the grid point counts; it differs from `moment`'s only across a DST change.
    for offset in {first, _offset(base + (-(base + first)) % step, tz)}:
        point = base + (-(base + offset)) % step
        if _offset(point, tz) == offset and (best is None or point < best):
            best = point
    return datetime.fromtimestamp(best if best is not None else base + (-(base + first)) % step, UTC)


def _offset(at: int, tz: ZoneInfo) -> int:
    return int(datetime.fromtimestamp(at, UTC).astimezone(tz).utcoffset().total_seconds())  # type: ignore[union-attr]


def _free(busy: list[Span], starts: list[datetime], start: datetime, end: datetime) -> bool:
    """No busy interval overlaps [start, end). Merged intervals are disjoint and sorted, so only
    the last one starting before `end` can reach past `start`."""
    index = bisect.bisect_left(starts, end)
    return index == 0 or busy[index - 1][1] <= start
