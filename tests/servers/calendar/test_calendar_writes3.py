"""Calendar defects from the outside review "writes8", through the hub: occurrence edits and
this-and-following splits on DST gap and fall-back days (Berlin, New York, Lord Howe), list_events
walks while events are rescheduled, and slot starts aligned on a local clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.hub import Hub
from servers.calendar.model import WorkingHours
from servers.calendar.slots import find_slots
from tests.domain_support import calendars, hub_fixture, tool_caller

pytestmark = pytest.mark.anyio
BERLIN, NEW_YORK, LORD_HOWE, KOLKATA, UTC_CAL = "b@example.com", "n@example.com", "l@example.com", "k@example.com", "u@example.com"

hub = hub_fixture("calendar", seed=calendars((BERLIN, "B", "Europe/Berlin", True), (NEW_YORK, "N", "America/New_York"),
                                             (LORD_HOWE, "L", "Australia/Lord_Howe"), (KOLKATA, "K", "Asia/Kolkata"),
                                             (UTC_CAL, "U", "UTC")))
call = tool_caller("calendar")

# (calendar, first start, first end, count, the DST-day occurrence as list_events shows its start)
DST_SERIES = [
    (BERLIN, "2026-03-27T02:30:00", "2026-03-27T03:00:00", 5, "2026-03-29T03:30:00+02:00"),  # in the 1 h gap
    (LORD_HOWE, "2026-10-02T02:15:00", "2026-10-02T02:45:00", 6, "2026-10-04T02:45:00+11:00"),  # in the 30 min gap
    (NEW_YORK, "2026-10-30T01:30:00", "2026-10-30T02:15:00", 4, "2026-11-01T01:30:00-04:00"),  # ends after the fall back
    (LORD_HOWE, "2026-04-03T01:45:00", "2026-04-03T02:30:00", 4, "2026-04-05T01:45:00+11:00"),  # 30 min fall back
]
WHOLE_YEAR = {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}


async def times(hub: Hub, calendar_id: str) -> list[tuple[str, str]]:
    listed = await call(hub, "list_events", calendar_id=calendar_id, **WHOLE_YEAR)
    return [(e["start"]["utc"], e["end"]["utc"]) for e in listed["events"]]


async def series(hub: Hub, calendar_id: str, first: str, end: str, count: int) -> dict[str, Any]:
    return await call(hub, "create_event", calendar_id=calendar_id, title="Sync", start=first, end=end,
                      rrule=f"FREQ=DAILY;COUNT={count}")


@pytest.mark.parametrize("calendar_id,first,end,count,instance", DST_SERIES)
async def test_one_field_edit_of_a_dst_day_occurrence_keeps_its_times(hub: Hub, calendar_id: str, first: str, end: str,
                                                                       count: int, instance: str) -> None:
    made = await series(hub, calendar_id, first, end, count)
    before = await times(hub, calendar_id)
    shown = await call(hub, "get_event", calendar_id=calendar_id, event_id=made["id"], instance_start=instance)
    edited = await call(hub, "update_event", calendar_id=calendar_id, event_id=made["id"], scope="this",
                        instance_start=instance, location="Room 1")
    assert edited.get("location") == "Room 1", edited
    assert (edited["start"]["utc"], edited["end"]["utc"]) == (shown["start"]["utc"], shown["end"]["utc"])
    assert await times(hub, calendar_id) == before
    day = shown["start"]["utc"][:10]
    busy = await call(hub, "get_free_busy", participants=[calendar_id], start=f"{day}T00:00:00Z", end=f"{day}T23:59:59Z")
    assert [(b["start"], b["end"]) for b in busy["participants"][0]["busy"]] == [(shown["start"]["utc"], shown["end"]["utc"])]
    answered = await call(hub, "respond_to_event", calendar_id=calendar_id, event_id=made["id"], response="accepted",
                          instance_start=instance)
    assert answered.get("code") in (None, "invalid_argument")  # not invited: either way no time may move
    assert await times(hub, calendar_id) == before


@pytest.mark.parametrize("calendar_id,first,end,count,instance", DST_SERIES)
async def test_title_only_split_at_a_dst_day_occurrence_keeps_every_occurrence(hub: Hub, calendar_id: str, first: str, end: str,
                                                                               count: int, instance: str) -> None:
    made = await series(hub, calendar_id, first, end, count)
    before = await times(hub, calendar_id)
    split = await call(hub, "update_event", calendar_id=calendar_id, event_id=made["id"], scope="this_and_following",
                       instance_start=instance, title="Sync 2")
    assert split.get("title") == "Sync 2", split
    assert split["start"]["utc"] < split["end"]["utc"]
    assert await times(hub, calendar_id) == before  # same count, same starts and exact ends
    listed = await call(hub, "list_events", calendar_id=calendar_id, **WHOLE_YEAR)
    titles = [e["title"] for e in listed["events"]]
    assert titles == ["Sync"] * 2 + ["Sync 2"] * (count - 2)
    # The split-off series moves as a whole like any other: a day later, still every occurrence.
    renamed = await call(hub, "update_event", calendar_id=calendar_id, event_id=split["id"], title="Sync 3")
    assert renamed.get("title") == "Sync 3" and await times(hub, calendar_id) == before


async def test_a_walk_returns_each_event_once_while_events_are_rescheduled(hub: Hub) -> None:
    made = {}
    for hour in (10, 11, 12, 13):
        event = await call(hub, "create_event", calendar_id=UTC_CAL, title=f"E{hour}", start=f"2026-06-01T{hour}:00:00",
                           end=f"2026-06-01T{hour}:30:00")
        made[hour] = event["id"]
    span = {"calendar_id": UTC_CAL, "start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "limit": 2}
    page = await call(hub, "list_events", **span)
    seen = [e["title"] for e in page["events"]]
    assert seen == ["E10", "E11"]
    await call(hub, "update_event", calendar_id=UTC_CAL, event_id=made[13], start="2026-06-01T09:00:00", end="2026-06-01T09:30:00")
    await call(hub, "update_event", calendar_id=UTC_CAL, event_id=made[10], start="2026-06-01T15:00:00", end="2026-06-01T15:30:00")
    shown_at = {}
    cursor = page["next_cursor"]
    while cursor:
        page = await call(hub, "list_events", cursor=cursor, **span)
        seen += [e["title"] for e in page["events"]]
        shown_at.update({e["title"]: e["start"]["utc"] for e in page["events"]})
        cursor = page["next_cursor"]
    assert seen == ["E10", "E11", "E12", "E13"]
    assert shown_at["E13"] == "2026-06-01T09:00:00Z"  # returned where the walk met it, with its current time


async def test_slots_start_on_whole_local_hours_in_a_half_hour_zone(hub: Hub) -> None:
    await call(hub, "create_event", calendar_id=KOLKATA, title="Busy", start="2026-06-01T10:00:00", end="2026-06-01T17:00:00")
    window = {"window_start": "2026-06-01T00:00:00", "window_end": "2026-06-02T00:00:00", "duration_minutes": 60,
              "granularity_minutes": 60}
    found = await call(hub, "find_available_slots", participants=[KOLKATA], zone="Asia/Kolkata", **window)
    assert [(s["start"]["local"], s["end"]["local"]) for s in found["slots"]] == [
        ("2026-06-01T09:00:00+05:30", "2026-06-01T10:00:00+05:30")]
    # Read in UTC the participant's own clock still counts: the same free hour (03:30Z).
    in_utc = await call(hub, "find_available_slots", participants=[KOLKATA], zone="UTC",
                        **{**window, "window_start": "2026-05-31T18:30:00Z", "window_end": "2026-06-01T18:30:00Z"})
    assert [s["start"]["utc"] for s in in_utc["slots"]] == ["2026-06-01T03:30:00Z"]
    free_day = await call(hub, "find_available_slots", participants=[KOLKATA], zone="Asia/Kolkata", max_results=10,
                          **{**window, "window_start": "2026-06-02T00:00:00", "window_end": "2026-06-03T00:00:00"})
    assert [s["start"]["local"][11:16] for s in free_day["slots"]] == [f"{h:02d}:00" for h in range(9, 17)]


@pytest.mark.parametrize("zone,granularity", [("Asia/Kathmandu", 60), ("Asia/Kathmandu", 45), ("Australia/Lord_Howe", 30),
                                              ("America/St_Johns", 60)])
def test_slot_grid_is_the_local_clock_of_a_quarter_or_half_hour_zone(zone: str, granularity: int) -> None:
    tz = ZoneInfo(zone)
    start = datetime(2026, 6, 1, tzinfo=tz).astimezone(UTC)
    hours = {"p": WorkingHours(zone=zone)}
    found = find_slots({"p": []}, hours, start, start + timedelta(days=1), timedelta(minutes=granularity),
                       granularity=timedelta(minutes=granularity), max_results=50, grid_zones=[zone])
    local = [s.astimezone(tz) for s, _ in found]
    assert local[0].hour == 9 and local[0].minute == 0
    assert all(((t.hour * 60 + t.minute) % granularity) == 0 for t in local)
    assert len(found) == 8 * 60 // granularity  # the whole 09:00-17:00 day
