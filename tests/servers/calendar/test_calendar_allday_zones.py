"""An all-day event covers its calendar's local day, whatever zone a query window is given in: free/busy,
find-slots and list_events, on the embedded store and through CalDAV (outside review writes17 #3)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mcp import Client

from servers.calendar.model import NewEvent
from servers.calendar.providers.caldav import CalDavCalendar
from servers.calendar.server import create_server, make_backend
from tests.servers.calendar.radicale_support import proxied, start_radicale

pytestmark = pytest.mark.anyio

CASES = [
    ("Pacific/Kiritimati", date(2026, 7, 1)),  # +14
    ("Australia/Sydney", date(2026, 7, 1)),
    ("Australia/Sydney", date(2026, 4, 5)),  # back to +10 at 03:00 (a 25-hour day)
    ("Australia/Sydney", date(2026, 10, 4)),  # on to +11 at 02:00 (a 23-hour day)
    ("Asia/Kolkata", date(2026, 7, 1)),  # +05:30
    ("America/Los_Angeles", date(2026, 3, 8)),  # a 23-hour day
    ("America/Los_Angeles", date(2026, 11, 1)),  # a 25-hour day
    ("Pacific/Pago_Pago", date(2026, 7, 1)),  # -11
]


def _local_day(zone: str, day: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return (datetime.combine(day, datetime.min.time(), tz).astimezone(UTC),
            datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC))


def _hours(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    """Every hour-long window (in UTC) from `first` to `last`."""
    out, at = [], first
    while at < last:
        out.append((at, at + timedelta(hours=1)))
        at += timedelta(hours=1)
    return out


async def _check_every_hour(backend: Any, cal: str, zone: str, day: date) -> None:
    begins, ends = _local_day(zone, day)
    for start, end in _hours(begins - timedelta(hours=2), ends + timedelta(hours=2)):
        inside = begins <= start < ends
        busy = (await backend.free_busy([cal], start, end))[0].busy
        assert [(b.start, b.end) for b in busy] == ([(start, end)] if inside else []), (zone, day, start)
        for expand in (True, False):  # occurrences, or the events themselves
            listed = (await backend.list_events(cal, start, end, None, expand, 10, None)).events
            assert [e.title for e in listed] == (["Out of office"] if inside else []), (zone, day, start, expand)


@pytest.mark.parametrize(("zone", "day"), CASES)
async def test_embedded_all_day_event_is_busy_for_every_hour_of_its_local_day(tmp_path: Path, zone: str, day: date) -> None:
    backend = make_backend("embedded", tmp_path)
    await backend.create_calendar("me@x.com", "Me", zone, None)  # type: ignore[attr-defined]
    await backend.create(NewEvent(calendar_id="me@x.com", title="Out of office", start=day, end=day + timedelta(days=1),
                                  zone=zone, all_day=True))
    await _check_every_hour(backend, "me@x.com", zone, day)


@pytest.mark.parametrize(("zone", "day"), [CASES[1], CASES[-1]])
async def test_slots_avoid_an_all_day_event_early_and_late_in_its_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     zone: str, day: date) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    async with Client(create_server(make_backend("embedded", tmp_path))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        await call("create_calendar", calendar_id="me@x.com", name="Me", zone=zone)
        await call("create_event", calendar_id="me@x.com", title="Out of office", start=day.isoformat(),
                   end=(day + timedelta(days=1)).isoformat(), all_day=True)
        tz = ZoneInfo(zone)
        for hour in (9, 16):  # before UTC midnight in Sydney; after it in Pago Pago
            start = datetime.combine(day, datetime.min.time(), tz).replace(hour=hour).astimezone(UTC)
            window = {"window_start": start.isoformat(), "window_end": (start + timedelta(hours=1)).isoformat()}
            slots = await call("find_available_slots", participants=["me@x.com"], duration_minutes=30, zone=zone, **window)
            assert slots["slots"] == [], (hour, slots)
            listed = await call("list_events", calendar_id="me@x.com", start=window["window_start"], end=window["window_end"])
            assert [e["title"] for e in listed["events"]] == ["Out of office"]


@pytest.mark.parametrize(("zone", "day"), [CASES[0], CASES[3], CASES[-1]])
async def test_caldav_all_day_event_is_busy_for_every_hour_of_its_local_day(tmp_path: Path, procs: list, zone: str,
                                                                            day: date) -> None:
    dav = start_radicale(tmp_path, procs)
    with proxied(dav):
        backend = CalDavCalendar(dav.url, "alice", "secret", zone)
        cal = (await backend.calendars())[0].id
        await backend.create(NewEvent(calendar_id=cal, title="Out of office", start=day, end=day + timedelta(days=1),
                                      zone=zone, all_day=True))
        await _check_every_hour(backend, cal, zone, day)
