"""Calendar writes land as the agent meant them (issue #16, calendar 1-5), through the hub or a
real `mcp-hub server calendar` process: offset instants, DST gaps and repeats, RRULE validation and
the per-query expansion bound, a fresh install, unknown participants and bad inputs; plus the
property that any offset instant round-trips create -> get -> list -> free/busy."""

from __future__ import annotations

import functools
import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters

from hub.hub import Hub
from servers.calendar.store import EmbeddedCalendar
from tests.domain_support import calendars, hub_fixture, portal_hub_fixture, tool_caller

pytestmark = pytest.mark.anyio
ADA = "ada@example.com"
MALLORY = "mallory@example.com"


hub = hub_fixture("calendar", seed=calendars((ADA, "Ada", "Europe/London", True),
                                             ("alan@example.com", "Alan", "America/New_York"), (MALLORY, "Mallory", "UTC")))
call = tool_caller("calendar")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- 1. offsets -------------------------------------------------------------------------------

@pytest.mark.parametrize(("given_start", "zone", "utc_start", "shown_zone", "local_start"), [
    ("2026-06-10T11:00:00+02:00", None, "2026-06-10T09:00:00Z", "UTC", "2026-06-10T09:00:00Z"),
    ("2026-06-10T11:00:00Z", None, "2026-06-10T11:00:00Z", "UTC", "2026-06-10T11:00:00Z"),
    ("2026-06-10T11:00:00-05:30", "Asia/Tokyo", "2026-06-10T16:30:00Z", "Asia/Tokyo", "2026-06-11T01:30:00+09:00"),
    ("2026-06-10T11:00:00", "America/New_York", "2026-06-10T15:00:00Z", "America/New_York", "2026-06-10T11:00:00-04:00"),
])
async def test_an_offset_instant_is_stored_as_that_instant(hub: Hub, given_start: str, zone: str | None, utc_start: str,
                                                          shown_zone: str, local_start: str) -> None:
    end = (utc(given_start) if utc(given_start).tzinfo else datetime.fromisoformat(given_start)) + timedelta(hours=1)
    args = {"zone": zone} if zone else {}
    created = await call(hub, "create_event", calendar_id=ADA, title="Sync", start=given_start, end=end.isoformat(), **args)
    assert (created["start"]["utc"], created["start"]["zone"], created["start"]["local"]) == (utc_start, shown_zone, local_start)
    fetched = await call(hub, "get_event", calendar_id=ADA, event_id=created["id"])
    assert fetched["start"] == created["start"] and fetched["end"] == created["end"]
    stored = (await EmbeddedCalendar(Path(os.environ["MCP_HUB_DATA_DIR"]))._load(ADA, created["id"]))[0]
    assert 'TZID="UTC' not in stored and "TZID=UTC" not in stored


async def test_update_with_an_offset_keeps_the_instant_and_the_events_zone(hub: Hub) -> None:
    weekly = await call(hub, "create_event", calendar_id=ADA, title="Weekly", start="2026-06-01T10:00:00",
                        end="2026-06-01T10:30:00", rrule="FREQ=WEEKLY;COUNT=4")
    moved = await call(hub, "update_event", calendar_id=ADA, event_id=weekly["id"], start="2026-06-01T11:00:00+02:00",
                       end="2026-06-01T11:30:00+02:00")
    assert moved["start"]["utc"] == "2026-06-01T09:00:00Z" and moved["start"]["zone"] == "Europe/London"
    listed = await call(hub, "list_events", calendar_id=ADA, start="2026-06-01T00:00:00Z", end="2026-07-01T00:00:00Z")
    assert [e["start"]["utc"][11:16] for e in listed["events"]] == ["09:00"] * 4
    other = await call(hub, "update_event", calendar_id=ADA, event_id=weekly["id"], scope="this",
                       instance_start="2026-06-08T10:00:00+01:00", start="2026-06-08T16:00:00", zone="Asia/Kolkata")
    assert other["start"]["utc"] == "2026-06-08T10:30:00Z" and other["end"]["utc"] == "2026-06-08T11:00:00Z"


# -- 2. DST gap and repeated hour ---------------------------------------------------------------

async def test_spring_forward_gap_follows_rfc_5545_and_order_is_checked_on_instants(hub: Hub) -> None:
    berlin = {"calendar_id": ADA, "zone": "Europe/Berlin"}
    empty = await call(hub, "create_event", title="Gap", start="2026-03-29T02:30:00", end="2026-03-29T03:30:00", **berlin)
    assert empty["code"] == "invalid_argument" and "does not exist in Europe/Berlin" in empty["message"]
    shifted = await call(hub, "create_event", title="Gap", start="2026-03-29T02:30:00", end="2026-03-29T04:00:00", **berlin)
    assert shifted["start"]["utc"] == "2026-03-29T01:30:00Z" and shifted["start"]["local"] == "2026-03-29T03:30:00+02:00"
    assert shifted["end"]["utc"] == "2026-03-29T02:00:00Z"
    assert (await call(hub, "get_event", calendar_id=ADA, event_id=shifted["id"]))["start"] == shifted["start"]
    gap_series = await call(hub, "create_event", title="Night job", start="2026-03-29T02:30:00", end="2026-03-29T04:00:00",
                            rrule="FREQ=DAILY;COUNT=3", **berlin)
    assert gap_series["code"] == "invalid_argument" and "series cannot begin there" in gap_series["message"]
    daily = await call(hub, "create_event", title="Night job", start="2026-03-28T02:30:00", end="2026-03-28T03:30:00",
                       rrule="FREQ=DAILY;COUNT=3", **berlin)
    runs = (await call(hub, "list_events", calendar_id=ADA, start="2026-03-28T00:00:00Z", end="2026-04-01T00:00:00Z"))["events"]
    runs = [(e["start"]["local"], e["end"]["utc"]) for e in runs if e["id"] == daily["id"]]
    assert runs == [("2026-03-28T02:30:00+01:00", "2026-03-28T02:30:00Z"),
                    ("2026-03-29T03:30:00+02:00", "2026-03-29T02:30:00Z"),  # shifted by the gap, still one hour long
                    ("2026-03-30T02:30:00+02:00", "2026-03-30T01:30:00Z")]


async def test_fall_back_repeated_hour(hub: Hub) -> None:
    berlin = {"calendar_id": ADA, "zone": "Europe/Berlin"}
    first = await call(hub, "create_event", title="First", start="2026-10-25T02:30:00", end="2026-10-25T02:45:00", **berlin)
    assert first["start"]["utc"] == "2026-10-25T00:30:00Z", "a repeated local time is its first occurrence"
    second = await call(hub, "create_event", title="Second", start="2026-10-25T02:30:00+01:00", end="2026-10-25T02:45:00+01:00",
                        **berlin)
    assert second["start"]["utc"] == "2026-10-25T01:30:00Z" and second["end"]["utc"] == "2026-10-25T01:45:00Z"
    assert (await call(hub, "get_event", calendar_id=ADA, event_id=second["id"]))["start"]["utc"] == "2026-10-25T01:30:00Z"



async def spans(hub: Hub, event_id: str, start: str, end: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What `list_events` and `get_free_busy` give for one event in [start, end): (start, end) in UTC."""
    listed = (await call(hub, "list_events", calendar_id=ADA, start=start, end=end))["events"]
    busy = (await call(hub, "get_free_busy", participants=[ADA], start=start, end=end))["participants"][0]["busy"]
    return ([(e["start"]["utc"], e["end"]["utc"]) for e in listed if e["id"] == event_id],
            [(b["start"], b["end"]) for b in busy])


async def test_an_occurrence_longer_than_its_wall_clock_shows_in_a_window_of_its_last_part(hub: Hub) -> None:
    """01:00–04:00 Berlin daily lasts 3 hours exactly; on the spring-forward day the expansion's own
    (wall-clock) end is an hour early, and a window inside that last hour found nothing: listed
    nowhere, shown free."""
    series = await call(hub, "create_event", calendar_id=ADA, title="Night shift", start="2026-03-27T01:00:00",
                        end="2026-03-27T04:00:00", zone="Europe/Berlin", rrule="FREQ=DAILY;COUNT=4")
    try:
        listed, busy = await spans(hub, series["id"], "2026-03-29T02:30:00Z", "2026-03-29T03:00:00Z")
        assert listed == [("2026-03-29T00:00:00Z", "2026-03-29T03:00:00Z")], listed
        assert busy == [("2026-03-29T02:30:00Z", "2026-03-29T03:00:00Z")], busy
        listed, busy = await spans(hub, series["id"], "2026-10-25T02:30:00Z", "2026-10-25T03:00:00Z")
        assert listed == [] and busy == []  # not past its exact end (02:00Z) on the fall-back day
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=series["id"], confirm=True)


async def test_an_occurrence_moved_on_a_dst_day_keeps_the_end_it_was_given(hub: Hub) -> None:
    """An override of 02:30–03:30 Berlin on the fall-back day lasts 2 hours (the first 02:30 to 03:30);
    the update's answer, the listing and free/busy gave it the series' length (1 hour)."""
    series = await call(hub, "create_event", calendar_id=ADA, title="Standup", start="2026-10-24T02:30:00",
                        end="2026-10-24T03:30:00", zone="Europe/Berlin", rrule="FREQ=DAILY;COUNT=3")
    try:
        moved = await call(hub, "update_event", calendar_id=ADA, event_id=series["id"], scope="this",
                           instance_start="2026-10-25T02:30:00+02:00", start="2026-10-25T02:30:00+02:00",
                           end="2026-10-25T03:30:00+01:00")
        assert (moved["start"]["utc"], moved["end"]["utc"]) == ("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z"), moved
        listed, busy = await spans(hub, series["id"], "2026-10-25T00:00:00Z", "2026-10-25T12:00:00Z")
        assert listed == [("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z")], listed
        assert busy == [("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z")], busy
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=series["id"], confirm=True)


async def shown(hub: Hub, event_id: str, instance: str, day: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """An occurrence's start and end as `get_event` and `list_events` show them."""
    got = await call(hub, "get_event", calendar_id=ADA, event_id=event_id, instance_start=instance)
    listed = await call(hub, "list_events", calendar_id=ADA, start=f"{day}T00:00:00Z", end=f"{day}T23:59:00Z")
    return [(got["start"], got["end"]), *((e["start"], e["end"]) for e in listed["events"] if e["id"] == event_id)]


async def test_a_time_asked_for_in_utc_stays_in_utc_and_a_flights_end_in_its_own_zone(hub: Hub) -> None:
    """Found by review of the one-zone display: an occurrence moved with zone UTC was shown in the
    series' zone (a later zone-only update then moved it); a flight's end set in New York was listed
    in the start's zone."""
    series = await call(hub, "create_event", calendar_id=ADA, title="Sync", start="2026-06-01T09:00:00",
                        end="2026-06-01T10:00:00", zone="Europe/Berlin", rrule="FREQ=DAILY;COUNT=3")
    flight = await call(hub, "create_event", calendar_id=ADA, title="Flight", start="2026-10-31T22:00:00",
                        end="2026-10-31T23:00:00", zone="Europe/Berlin")
    try:
        moved = await call(hub, "update_event", calendar_id=ADA, event_id=series["id"], scope="this",
                           instance_start="2026-06-02T09:00:00+02:00", start="2026-06-02T12:00:00",
                           end="2026-06-02T13:00:00", zone="UTC")
        utc_noon = {"utc": "2026-06-02T12:00:00Z", "local": "2026-06-02T12:00:00Z", "zone": "UTC", "date": None}
        assert moved["start"] == utc_noon, moved
        assert [start for start, _ in await shown(hub, series["id"], "2026-06-02T09:00:00+02:00", "2026-06-02")] == [utc_noon] * 2
        landed = await call(hub, "update_event", calendar_id=ADA, event_id=flight["id"], end="2026-11-01T03:00:00",
                            zone="America/New_York")
        arrival = {"utc": "2026-11-01T08:00:00Z", "local": "2026-11-01T03:00:00-05:00", "zone": "America/New_York", "date": None}
        assert landed["end"] == arrival, landed
        got = await call(hub, "get_event", calendar_id=ADA, event_id=flight["id"])
        listed = await call(hub, "list_events", calendar_id=ADA, start="2026-10-31T00:00:00Z", end="2026-11-02T00:00:00Z")
        assert [got["end"], *(e["end"] for e in listed["events"] if e["id"] == flight["id"])] == [arrival] * 2
    finally:
        for made in (series, flight):
            await call(hub, "delete_event", calendar_id=ADA, event_id=made["id"], confirm=True)


async def test_an_occurrence_moved_forward_by_a_gap_is_read_and_deleted_by_its_instance_start(hub: Hub) -> None:
    """A daily 02:30–03:00 Berlin series: on the spring-forward day the occurrence is 03:30–04:00
    CEST; `get_event` and `delete_event` with the `instance_start` the listing gave answered
    `not_found` (found by review: the look-up asked the expansion without the listing's DST slack)."""
    series = await call(hub, "create_event", calendar_id=ADA, title="Early", start="2026-03-28T02:30:00",
                        end="2026-03-28T03:00:00", zone="Europe/Berlin", rrule="FREQ=DAILY;COUNT=3")
    try:
        listed = await call(hub, "list_events", calendar_id=ADA, start="2026-03-29T00:00:00Z", end="2026-03-29T12:00:00Z")
        [gap_day] = [e for e in listed["events"] if e["id"] == series["id"]]
        assert gap_day["start"]["local"] == "2026-03-29T03:30:00+02:00", gap_day
        got = await call(hub, "get_event", calendar_id=ADA, event_id=series["id"], instance_start=gap_day["instance_start"])
        assert (got["start"], got["end"]) == (gap_day["start"], gap_day["end"]), got
        gone = await call(hub, "delete_event", calendar_id=ADA, event_id=series["id"], scope="this",
                          instance_start=gap_day["instance_start"], confirm=True)
        assert "code" not in gone, gone
        after = await call(hub, "list_events", calendar_id=ADA, start="2026-03-28T00:00:00Z", end="2026-03-31T00:00:00Z")
        assert [e["start"]["local"][:10] for e in after["events"] if e["id"] == series["id"]] == ["2026-03-28", "2026-03-30"]
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=series["id"], confirm=True)


async def test_a_series_cannot_begin_at_the_second_time_of_a_repeated_hour(hub: Hub) -> None:
    """01:30-05:00 on New York's fall-back day is the second 01:30. iCalendar names only the first,
    so the series was kept in UTC and repeated an hour off after the next change (found by review);
    now it is refused, naming the first time, as a series beginning in a gap is. A single event
    there, and a series at the first 01:30, are kept as asked."""
    base = {"calendar_id": ADA, "title": "Night shift", "zone": "America/New_York"}
    refused = await call(hub, "create_event", start="2026-11-01T01:30:00-05:00", end="2026-11-01T02:30:00-05:00",
                         rrule="FREQ=WEEKLY;COUNT=3", **base)
    assert refused["code"] == "invalid_argument", refused
    assert "happens twice" in refused["message"] and "2026-11-01T01:30:00-04:00" in refused["message"], refused
    listed = await call(hub, "list_events", calendar_id=ADA, start="2026-10-31T00:00:00Z", end="2026-11-30T00:00:00Z")
    assert not [e for e in listed["events"] if e["title"] == "Night shift"], "nothing refused was stored"
    single = await call(hub, "create_event", start="2026-11-01T01:30:00-05:00", end="2026-11-01T02:30:00-05:00", **base)
    first = await call(hub, "create_event", start="2026-11-01T01:30:00-04:00", end="2026-11-01T02:30:00-05:00",
                       rrule="FREQ=WEEKLY;COUNT=3", **base)
    try:
        assert single["start"]["utc"] == "2026-11-01T06:30:00Z", single
        weekly = await call(hub, "list_events", calendar_id=ADA, start="2026-11-07T00:00:00Z", end="2026-11-09T00:00:00Z")
        assert [e["start"]["local"] for e in weekly["events"] if e["id"] == first["id"]] == ["2026-11-08T01:30:00-05:00"]
    finally:
        for made in (single, first):
            await call(hub, "delete_event", calendar_id=ADA, event_id=made["id"], confirm=True)


async def test_a_zone_only_update_keeps_the_second_time_of_a_repeated_hour(hub: Hub) -> None:
    """02:30+01:00 is Berlin's second 02:30 on 2026-10-25; re-anchoring the event to Berlin (its own
    zone) or Paris (the same rules) moved it to the first 02:30, an hour earlier (found by review)."""
    made = await call(hub, "create_event", calendar_id=ADA, title="Late", start="2026-10-25T02:30:00+01:00",
                      end="2026-10-25T03:30:00+01:00", zone="Europe/Berlin")
    try:
        assert (made["start"]["local"], made["start"]["zone"]) == ("2026-10-25T02:30:00+01:00", "Europe/Berlin"), made
        for new_zone in ("Europe/Berlin", "Europe/Paris"):
            moved = await call(hub, "update_event", calendar_id=ADA, event_id=made["id"], zone=new_zone)
            assert (moved["start"]["utc"], moved["end"]["utc"]) == ("2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"), moved
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=made["id"], confirm=True)


async def test_a_single_event_at_the_second_time_does_not_become_a_series(hub: Hub) -> None:
    """Adding a rule to an event that starts at the second 02:30 made the series the creation check
    refuses (found by review)."""
    made = await call(hub, "create_event", calendar_id=ADA, title="Once", start="2026-10-25T02:30:00+01:00",
                      end="2026-10-25T03:00:00+01:00", zone="Europe/Berlin")
    try:
        refused = await call(hub, "update_event", calendar_id=ADA, event_id=made["id"], rrule="FREQ=WEEKLY;COUNT=3")
        assert refused["code"] == "invalid_argument" and "happens twice" in refused["message"], refused
        assert (await call(hub, "get_event", calendar_id=ADA, event_id=made["id"]))["recurrence"] is None
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=made["id"], confirm=True)


async def test_a_series_whose_first_end_is_a_second_time_keeps_its_length_and_zone(hub: Hub) -> None:
    """02:10+02:00 to 02:20+01:00 (70 minutes, the end the second 02:20): later occurrences were shown
    ending in UTC, and a zone-only update of one cut it to 10 minutes (found by review)."""
    series = await call(hub, "create_event", calendar_id=ADA, title="Across", start="2026-10-25T02:10:00+02:00",
                        end="2026-10-25T02:20:00+01:00", zone="Europe/Berlin", rrule="FREQ=DAILY;COUNT=3")
    try:
        listed = await call(hub, "list_events", calendar_id=ADA, start="2026-10-26T00:00:00Z", end="2026-10-27T00:00:00Z")
        [second] = [e for e in listed["events"] if e["id"] == series["id"]]
        assert (second["start"]["local"], second["end"]["local"], second["end"]["zone"]) == (
            "2026-10-26T02:10:00+01:00", "2026-10-26T03:20:00+01:00", "Europe/Berlin"), second
        kept = await call(hub, "update_event", calendar_id=ADA, event_id=series["id"], scope="this",
                          instance_start=second["instance_start"], zone="Europe/Berlin")
        assert (kept["start"]["utc"], kept["end"]["utc"]) == (second["start"]["utc"], second["end"]["utc"]), kept
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=series["id"], confirm=True)


async def test_a_time_in_another_clients_custom_zone_is_shown_in_the_events_zone(hub: Hub) -> None:
    """An object another client wrote with a custom VTIMEZONE (Outlook's "Customized Time Zone", not an
    IANA name) for its end: get_event showed that end in the calendar's zone, list_events in the
    event's (found by review)."""
    custom = ("BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
              "TZOFFSETFROM:+0300\r\nTZOFFSETTO:+0300\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other//EN\r\n" + custom + "BEGIN:VEVENT\r\nUID:custom-end\r\n"
            "DTSTAMP:20260101T000000Z\r\nSUMMARY:Custom\r\nDTSTART;TZID=Europe/Berlin:20260610T090000\r\n"
            "DTEND;TZID=Customized Time Zone:20260610T120000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    await EmbeddedCalendar(Path(os.environ["MCP_HUB_DATA_DIR"]))._save(ADA, "custom-end", text, None)
    got = await call(hub, "get_event", calendar_id=ADA, event_id="custom-end")
    listed = await call(hub, "list_events", calendar_id=ADA, start="2026-06-10T00:00:00Z", end="2026-06-11T00:00:00Z")
    ends = [got["end"], *(e["end"] for e in listed["events"] if e["id"] == "custom-end")]
    assert ends == [{"utc": "2026-06-10T09:00:00Z", "local": "2026-06-10T11:00:00+02:00", "zone": "Europe/Berlin", "date": None}] * 2


async def test_re_anchoring_an_event_across_a_repeated_hour_says_why_it_cannot(hub: Hub) -> None:
    """The first 02:30 to the second 02:00 (30 minutes) has no wall-clock reading in Tokyo: a zone-only
    update answered "end must be after start" to a call that gave no times (found by review)."""
    made = await call(hub, "create_event", calendar_id=ADA, title="Across", start="2026-10-25T02:30:00",
                      end="2026-10-25T02:00:00+01:00", zone="Europe/Berlin")
    try:
        refused = await call(hub, "update_event", calendar_id=ADA, event_id=made["id"], zone="Asia/Tokyo")
        assert refused["code"] == "invalid_argument" and refused["details"]["field"] == "zone", refused
        assert "repeats" in refused["message"] and "Pass start and end" in refused["message"], refused
        kept = await call(hub, "get_event", calendar_id=ADA, event_id=made["id"])
        assert (kept["start"], kept["end"]) == (made["start"], made["end"]), "nothing refused was changed"
    finally:
        await call(hub, "delete_event", calendar_id=ADA, event_id=made["id"], confirm=True)


# -- 3. RRULEs and the expansion bound ----------------------------------------------------------

async def test_rrules_are_validated_and_dense_unbounded_series_refused(hub: Hub) -> None:
    base = {"calendar_id": ADA, "title": "R", "start": "2026-06-10T09:00:00", "end": "2026-06-10T09:30:00"}
    for rule, part in [("hello world", "hello world"), ("FREQ=DAILY;FOO=1", "FOO=1"), ("FREQ=WEEKLY;BYDAY=XX", "BYDAY=XX"),
                       ("FREQ=DAILY;COUNT=0", "COUNT=0"), ("FREQ=DAILY;COUNT=\u00b2", "COUNT=\u00b2"), ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY"),
                       ("FREQ=DAILY;COUNT=3;UNTIL=20260701", "COUNT=3;UNTIL=20260701")]:
        refused = await call(hub, "create_event", rrule=rule, **base)
        assert refused["code"] == "invalid_argument" and part in refused["message"], (rule, refused)
    for rule in ("FREQ=SECONDLY", "FREQ=MINUTELY", "FREQ=HOURLY", "FREQ=DAILY;BYHOUR=9,17", "FREQ=MINUTELY;COUNT=5000",
                 "FREQ=HOURLY;UNTIL=20300101T000000Z", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"):
        refused = await call(hub, "create_event", rrule=rule, **base)
        assert refused["code"] == "invalid_argument" and "rrule" in refused["message"], (rule, refused)
    hourly = await call(hub, "create_event", rrule="FREQ=HOURLY;COUNT=3", **base)
    assert hourly["recurrence"] == ["RRULE:FREQ=HOURLY;COUNT=3"]
    until = await call(hub, "create_event", rrule="freq=daily;until=20260612", **base)
    assert until["recurrence"] == ["RRULE:FREQ=DAILY;UNTIL=20260612T225959Z"], "UNTIL as a date ends that day, in UTC"
    garbage = await call(hub, "update_event", calendar_id=ADA, event_id=hourly["id"], rrule="hello world")
    assert garbage["code"] == "invalid_argument"
    assert (await call(hub, "get_event", calendar_id=ADA, event_id=hourly["id"]))["recurrence"] == ["RRULE:FREQ=HOURLY;COUNT=3"]
    listed = await call(hub, "list_events", calendar_id=ADA, start="2026-06-10T00:00:00Z", end="2026-06-11T00:00:00Z")
    assert [e["start"]["local"][11:16] for e in listed["events"] if e["id"] == hourly["id"]] == ["09:00", "10:00", "11:00"]


async def test_dense_series_are_bounded_per_query_and_cost_only_their_people(hub: Hub, tmp_path: Path) -> None:
    mallory = MALLORY
    days = [f"2026-06-{d:02d}" for d in (1, 3, 5, 8, 10, 12)]
    for day in days:  # each accepted (1,000 minutes); 6,000 together are over the per-query budget
        made = await call(hub, "create_event", calendar_id=mallory, title="Ping", start=f"{day}T06:00:00Z",
                          end=f"{day}T06:01:00Z", rrule="FREQ=MINUTELY;COUNT=1000")
        assert "id" in made, made
    spans = [(utc(f"{day}T06:00:00Z"), utc(f"{day}T06:00:00Z") + timedelta(minutes=1000)) for day in days]
    window = {"window_start": "2026-06-01T00:00:00Z", "window_end": "2026-08-01T00:00:00Z"}  # 61 days
    every_hour = {mallory: {"zone": "UTC", "start": "00:00", "end": "24:00",
                            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}
    found = await call(hub, "find_available_slots", participants=[mallory], duration_minutes=60, max_results=50,
                       working_hours=every_hour, **window)
    assert found["truncated"] is True and found["notes"]
    slots = [(utc(s["start"]["utc"]), utc(s["end"]["utc"])) for s in found["slots"]]
    assert slots and all(end <= s or e <= start for start, end in slots for s, e in spans), "never a slot in a busy minute"
    assert slots[0] == (utc("2026-06-01T00:00:00Z"), utc("2026-06-01T01:00:00Z"))
    listed = await call(hub, "list_events", calendar_id=mallory, start="2026-06-01T00:00:00Z", end="2026-07-01T00:00:00Z",
                        limit=10)
    assert listed["truncated"] is True and any("Ping" in n for n in listed["notes"]) and listed["next_cursor"]
    busy = (await call(hub, "get_free_busy", participants=[mallory], start="2026-06-01T00:00:00Z",
                       end="2026-08-01T00:00:00Z"))["participants"][0]
    assert busy["truncated"] is True
    assert [(utc(b["start"]), utc(b["end"])) for b in busy["busy"]] == spans, "one merged block a day, the cut one included"

    # Older data written before validation: an unbounded FREQ=MINUTELY series (the 14 s query).
    store = EmbeddedCalendar(tmp_path)
    await store.add_calendar("old@example.com", "Old", "UTC")
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:legacy@test\r\nDTSTAMP:20260101T000000Z\r\n"
            "SUMMARY:Every minute\r\nDTSTART:20260601T000000Z\r\nDTEND:20260601T000100Z\r\nRRULE:FREQ=MINUTELY\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")
    await store._save("old@example.com", "legacy@test", text, None)
    legacy = await call(hub, "list_events", calendar_id="old@example.com", start="2026-06-01T00:00:00Z", end="2026-08-01T00:00:00Z")
    assert legacy["events"] == [] and legacy["truncated"] is True and "legacy@test" in legacy["notes"][0]
    blocked = await call(hub, "find_available_slots", participants=["old@example.com"], duration_minutes=30, **window)
    assert blocked["slots"] == [] and blocked["truncated"] is True

    # Everyone else: complete answers, unaffected by either calendar.
    others = await call(hub, "find_available_slots", participants=[ADA, "alan@example.com"], duration_minutes=60, **window)
    assert others["truncated"] is False and others["notes"] == [] and others["unknown_participants"] == []
    assert [s["start"]["utc"] for s in others["slots"][:2]] == ["2026-06-01T13:00:00Z", "2026-06-01T14:00:00Z"]


# -- 4. fresh install ---------------------------------------------------------------------------

async def test_fresh_install_without_demo_has_a_working_calendar(tmp_path: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "hub.cli", "server", "calendar", "--transport", "stdio"],
                                   env={**os.environ, "MCP_HUB_DATA_DIR": str(tmp_path), "TZ": "Asia/Kolkata"})
    async with Client(params) as client:
        async def tool(tool_name: str, /, **args: Any) -> dict[str, Any]:
            result = await client.call_tool(tool_name, args)
            assert result.structured_content is not None, result.content
            return result.structured_content

        calendars = (await tool("list_calendars"))["calendars"]
        assert calendars == [{"id": "primary", "name": "My calendar", "zone": "Asia/Kolkata", "primary": True, "read_only": False}]
        event = await tool("create_event", calendar_id="primary", title="Dentist", start="2026-06-10T10:00:00", end="2026-06-10T11:00:00")
        assert event["start"]["utc"] == "2026-06-10T04:30:00Z"
        made = await tool("create_calendar", calendar_id="bea@example.com", name="Bea", zone="Europe/Madrid")
        assert made == {"id": "bea@example.com", "name": "Bea", "zone": "Europe/Madrid", "primary": False, "read_only": False}
        assert await tool("create_calendar", calendar_id="bea@example.com", name="Bea", zone="Europe/Madrid") == made
        assert (await tool("create_calendar", calendar_id="bea@example.com", name="Bea", zone="UTC"))["code"] == "conflict"
        assert (await tool("create_calendar", calendar_id="x@example.com", name="X", zone="Mars/Base"))["code"] == "invalid_argument"
        assert [c["id"] for c in (await tool("list_calendars"))["calendars"]] == ["primary", "bea@example.com"]
        missing = await tool("create_event", calendar_id="nobody", title="x", start="2026-06-10T10:00:00", end="2026-06-10T11:00:00")
        assert missing["code"] == "not_found" and "create_calendar" in missing["message"]


# -- 5. unknown participants and bad inputs -----------------------------------------------------

async def test_unknown_participants_are_reported_and_bad_inputs_refused(hub: Hub) -> None:
    window = {"window_start": "2026-09-01T00:00:00Z", "window_end": "2026-09-02T00:00:00Z"}
    found = await call(hub, "find_available_slots", participants=[ADA, "ghost@example.com"], duration_minutes=60, **window)
    assert found["unknown_participants"] == ["ghost@example.com"] and "ghost@example.com" in found["notes"][0]
    assert [s["start"]["utc"][11:16] for s in found["slots"]][:1] == ["08:00"], "Ada's hours; the ghost's are unknown"
    nobody = await call(hub, "find_available_slots", participants=["ghost@example.com"], duration_minutes=60, **window)
    assert nobody["code"] == "not_found" and "ghost@example.com" in nobody["message"]
    fb = await call(hub, "get_free_busy", participants=[ADA, "ghost@example.com"], start="2026-09-01T00:00:00Z",
                    end="2026-09-02T00:00:00Z")
    assert fb["unknown_participants"] == ["ghost@example.com"]

    base = {"calendar_id": ADA, "title": "x", "start": "2026-09-01T10:00:00", "end": "2026-09-01T11:00:00"}
    negative = await call(hub, "create_event", reminders_minutes=[10, -5], **base)
    assert negative["code"] == "invalid_argument" and "reminders_minutes" in negative["message"]
    for bad in ("bob", "bob@", "@example.com", "bob example@example.com", "mailto:bob@example.com"):
        refused = await call(hub, "create_event", attendees=["alan@example.com", bad], **base)
        assert refused["code"] == "invalid_argument" and "attendees[1]" in refused["message"], bad
    made = await call(hub, "create_event", attendees=["alan@example.com", "Alan@Example.com"], reminders_minutes=[0, 30], **base)
    assert [a["email"] for a in made["attendees"]] == ["alan@example.com"] and made["reminders_minutes"] == [0, 30]
    assert (await call(hub, "update_event", calendar_id=ADA, event_id=made["id"], attendees=["nope"]))["code"] == "invalid_argument"
    events = (await call(hub, "list_events", calendar_id=ADA, start="2026-09-01T00:00:00Z", end="2026-09-02T00:00:00Z"))["events"]
    assert [e["id"] for e in events] == [made["id"]], "nothing refused was stored"


# -- the property: any offset instant round-trips ----------------------------------------------

ZONES = [None, "UTC", "Europe/Berlin", "America/New_York", "America/St_Johns", "Asia/Kolkata", "Australia/Lord_Howe",
         "Pacific/Chatham", "Pacific/Kiritimati"]
TRANSITIONS = [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2026, 3, 8, 7, tzinfo=UTC),
               datetime(2026, 11, 1, 6, tzinfo=UTC), datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, tzinfo=UTC)]
instants = st.one_of(
    st.integers(0, 2 * 366 * 24 * 60).map(lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m)),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-150, 150)).map(lambda t: t[0] + timedelta(minutes=t[1])),
)
PERSON = "p@example.com"
offsets = st.tuples(st.sampled_from([-1, 1]), st.integers(0, 14), st.sampled_from([0, 30, 45])).map(
    lambda o: o[0] * (o[1] * 60 + o[2])).filter(lambda minutes: -12 * 60 <= minutes <= 14 * 60)


def as_offset(moment: datetime, minutes: int) -> str:
    """The instant written with a UTC offset of `minutes` (e.g. -330 -> 2026-...-05:30)."""
    return moment.astimezone(timezone(timedelta(minutes=minutes))).isoformat()


portal_hub = portal_hub_fixture("calendar", seed=calendars((PERSON, "P", "Europe/London")))


def test_any_offset_instant_round_trips(portal_hub: tuple[BlockingPortal, Hub]) -> None:
    portal, running = portal_hub

    def run(tool: str, **args: Any) -> dict[str, Any]:
        return portal.call(functools.partial(call, running, tool, **args))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(instants, offsets, offsets, st.integers(5, 600), st.sampled_from(ZONES))
    # Found by this test: ends in the second 02:xx of a fall-back night (stored in UTC) were listed an
    # hour late, the expansion adding the length on the wall clock. Always tried since.
    @example(datetime(2026, 10, 25, 0, 59, tzinfo=UTC), 0, 0, 5, "Europe/Berlin")
    def round_trip(moment: datetime, start_offset: int, end_offset: int, minutes: int, zone: str | None) -> None:
        finish = moment + timedelta(minutes=minutes)
        created = run("create_event", calendar_id=PERSON, title="T", start=as_offset(moment, start_offset),
                      end=as_offset(finish, end_offset), **({"zone": zone} if zone else {}))
        assert "id" in created, created
        try:
            assert (utc(created["start"]["utc"]), utc(created["end"]["utc"])) == (moment, finish), created
            assert utc(created["start"]["local"]) == moment and created["start"]["zone"] in (zone or "UTC", "UTC")
            fetched = run("get_event", calendar_id=PERSON, event_id=created["id"])
            assert (fetched["start"], fetched["end"]) == (created["start"], created["end"])
            span = {"start": (moment - timedelta(minutes=1)).isoformat(), "end": (finish + timedelta(minutes=1)).isoformat()}
            listed = run("list_events", calendar_id=PERSON, **span)["events"]
            assert [(utc(e["start"]["utc"]), utc(e["end"]["utc"])) for e in listed] == [(moment, finish)]
            # ... shown alike everywhere: the same local times in the same zone (an end stored in UTC
            # was shown in UTC by get_event and in the event's zone by list_events)
            assert [(e["start"], e["end"]) for e in listed] == [(fetched["start"], fetched["end"])]
            assert created["end"]["zone"] == created["start"]["zone"], created
            busy = run("get_free_busy", participants=[PERSON], **span)["participants"][0]["busy"]
            assert [(utc(b["start"]), utc(b["end"])) for b in busy] == [(moment, finish)]
        finally:  # every example starts with an empty calendar
            run("delete_event", calendar_id=PERSON, event_id=created["id"], confirm=True)

    round_trip()
