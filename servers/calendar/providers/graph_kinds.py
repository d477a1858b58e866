"""Which kind of name (a time, or a day) an occurrence read from Graph is given. An occurrence keeps the kind of
slot its series names them by, whatever its own kind became: one of a timed series made all-day (an offsite day
in a weekly meeting) is still named by its slot's time, one of an all-day series made timed by its day. Graph
answers an occurrence's own `isAllDay` only, so where the two may differ the series is read (once per series)."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from servers.calendar.providers.graph_times import iana
from servers.calendar.timeutil import zone
from servers.kit.errors import DomainError

if TYPE_CHECKING:
    from servers.calendar.providers.graph import GraphCalendar

SERIES_ALL_DAY = "@mcp-hub.seriesAllDay"
"""Set on an occurrence read here: whether its series is all-day."""


async def mark_series_kinds(cal: GraphCalendar, rows: list[dict[str, Any]], tz: str) -> None:
    """Marks each edited occurrence in `rows` that may be of another kind than its series (any all-day one, and a
    timed one whose slot is at midnight) with its series' kind."""
    kinds: dict[str, bool] = {}
    for raw in rows:
        master_id, original = raw.get("seriesMasterId"), raw.get("originalStart")
        if raw.get("type") != "exception" or not master_id or not original:
            continue
        try:
            slot = datetime.fromisoformat(original.replace("Z", "+00:00"))
            midnight = slot.astimezone(zone(iana(raw.get("originalStartTimeZone"), iana(raw["start"].get("timeZone"), tz)))).time() == time(0)
        except (DomainError, ValueError):
            continue
        if raw.get("isAllDay") or midnight:  # an all-day one of a series at midnight too (outside review r39b #6)
            if master_id not in kinds:
                kinds[master_id] = await series_all_day(cal, master_id, tz)
            raw[SERIES_ALL_DAY] = kinds[master_id]


async def series_all_day(cal: GraphCalendar, series_id: str, tz: str) -> bool:
    """Whether the series `series_id` is all-day."""
    return bool((await cal.http.json("GET", cal._events(series_id), headers=cal._prefer(tz))).get("isAllDay"))
