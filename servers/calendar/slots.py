"""Free/busy arithmetic and slot finding, as pure functions over UTC intervals.

A slot is offered only if, for every participant, it lies inside their working hours (in their
own zone, DST included) and, widened by the buffer on both sides, touches none of their busy
intervals.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, time, timedelta

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
) -> list[Span]:
    """Free slots for everyone, earliest first."""
    merged = {p: merge(spans) for p, spans in busy.items()}
    starts = {p: [s for s, _ in spans] for p, spans in merged.items()}
    windows = {p: working_windows(h, window_start, window_end) for p, h in hours.items()}
    step = int(granularity.total_seconds())
    epoch = int(window_start.timestamp())
    candidate = datetime.fromtimestamp(epoch + (-epoch) % step, UTC)
    found: list[Span] = []
    while candidate + duration <= window_end and len(found) < max_results:
        end = candidate + duration
        ok = all(_inside(w, candidate, end) for w in windows.values()) and all(
            _free(merged[p], starts[p], candidate - buffer, end + buffer) for p in merged)
        if ok:
            found.append((candidate, end))
            candidate = end + buffer
            epoch = int(candidate.timestamp())
            candidate = datetime.fromtimestamp(epoch + (-epoch) % step, UTC)
        else:
            candidate += granularity
    return found


def _free(busy: list[Span], starts: list[datetime], start: datetime, end: datetime) -> bool:
    """No busy interval overlaps [start, end). Merged intervals are disjoint and sorted, so only
    the last one starting before `end` can reach past `start`."""
    index = bisect.bisect_left(starts, end)
    return index == 0 or busy[index - 1][1] <= start
