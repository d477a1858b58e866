"""Calendar: the tools on the embedded backend through the hub, recurrence across DST, scoped
edits, and property-based tests of slot finding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.hub import Hub
from servers.calendar.model import WorkingHours
from servers.calendar.slots import find_slots, merge, working_windows
from tests.domain_support import calendars, hub_fixture, tool_caller

pytestmark = pytest.mark.anyio


hub = hub_fixture("calendar", seed=calendars(("ada@example.com", "Ada", "Europe/London", True),
                                             ("alan@example.com", "Alan", "America/New_York")))
call = tool_caller("calendar")


def local(event: dict[str, Any]) -> str:
    return event["start"]["local"][11:16]


@pytest.mark.parametrize(("zone", "first", "dst_day"), [
    ("Europe/London", "2026-03-26", "2026-03-29"),
    ("America/New_York", "2026-03-05", "2026-03-08"),
    ("Europe/Berlin", "2026-10-22", "2026-10-25"),
])
async def test_daily_meeting_keeps_local_time_across_dst(hub: Hub, zone: str, first: str, dst_day: str) -> None:
    await call(hub, "create_event", calendar_id="ada@example.com", title="Daily", start=f"{first}T09:00:00",
               end=f"{first}T09:30:00", zone=zone, rrule="FREQ=DAILY;COUNT=7")
    listed = await call(hub, "list_events", calendar_id="ada@example.com", start=f"{first}T00:00:00Z",
                        end=(datetime.fromisoformat(first) + timedelta(days=8)).strftime("%Y-%m-%dT00:00:00Z"))
    events = listed["events"]
    assert len(events) == 7 and {local(e) for e in events} == {"09:00"} and {e["start"]["zone"] for e in events} == {zone}
    offsets = {e["start"]["local"][19:] for e in events}
    assert len(offsets) == 2, "the UTC offset changes on the DST day while local time stays 09:00"
    utc_hours = {e["start"]["utc"][11:13] for e in events}
    assert len(utc_hours) == 2


async def test_all_day_multi_day_and_naive_times(hub: Hub) -> None:
    offsite = await call(hub, "create_event", calendar_id="ada@example.com", title="Offsite", start="2026-05-11",
                         end="2026-05-13", all_day=True)
    assert offsite["all_day"] is True and offsite["start"]["date"] == "2026-05-11" and offsite["end"]["date"] == "2026-05-13"
    found = await call(hub, "list_events", calendar_id="ada@example.com", start="2026-05-12T12:00:00", end="2026-05-12T13:00:00")
    assert [e["title"] for e in found["events"]] == ["Offsite"], "an all-day event spans its whole (exclusive-end) range"
    assert (await call(hub, "list_events", calendar_id="ada@example.com", start="2026-05-13T00:00:00",
                       end="2026-05-13T23:00:00"))["events"] == []
    naive = await call(hub, "create_event", calendar_id="alan@example.com", title="Lunch", start="2026-07-01T12:00:00",
                       end="2026-07-01T13:00:00")
    assert naive["start"]["zone"] == "America/New_York" and naive["start"]["utc"] == "2026-07-01T16:00:00Z"
    bad = await call(hub, "create_event", calendar_id="ada@example.com", title="x", start="2026-05-11", end="2026-05-11", all_day=True)
    assert bad["code"] == "invalid_argument" and "exclusive" in bad["message"]
    assert (await call(hub, "create_event", calendar_id="ada@example.com", title="x", start="2026-05-11T10:00", end="2026-05-11T11:00",
                       zone="Mars/Olympus"))["code"] == "invalid_argument"
    assert (await call(hub, "create_event", calendar_id="ada@example.com", title="x", start="soon", end="later"))["code"] == "invalid_argument"


async def test_series_edits_by_scope(hub: Hub) -> None:
    series = await call(hub, "create_event", calendar_id="ada@example.com", title="1:1", start="2026-06-01T10:00:00",
                        end="2026-06-01T10:30:00", rrule="FREQ=WEEKLY;COUNT=6", attendees=["alan@example.com"], idempotency_key="s1")
    again = await call(hub, "create_event", calendar_id="ada@example.com", title="1:1", start="2026-06-01T10:00:00",
                       end="2026-06-01T10:30:00", rrule="FREQ=WEEKLY;COUNT=6", attendees=["alan@example.com"],
                       idempotency_key="s1")
    assert again["id"] == series["id"]
    sid = series["id"]
    span = {"calendar_id": "ada@example.com", "start": "2026-06-01T00:00:00Z", "end": "2026-07-15T00:00:00Z"}

    moved = await call(hub, "update_event", calendar_id="ada@example.com", event_id=sid, scope="this",
                       instance_start="2026-06-08T10:00:00+01:00", start="2026-06-09T15:00:00", end="2026-06-09T15:30:00")
    assert moved["start"]["local"].startswith("2026-06-09T15:00")
    events = (await call(hub, "list_events", **span))["events"]
    assert [e["start"]["local"][:16] for e in events] == ["2026-06-01T10:00", "2026-06-09T15:00", "2026-06-15T10:00",
                                                         "2026-06-22T10:00", "2026-06-29T10:00", "2026-07-06T10:00"]
    one = await call(hub, "get_event", calendar_id="ada@example.com", event_id=sid, instance_start="2026-06-08T10:00:00+01:00")
    assert one["start"]["local"].startswith("2026-06-09T15:00")

    split = await call(hub, "update_event", calendar_id="ada@example.com", event_id=sid, scope="this_and_following",
                       instance_start="2026-06-22T10:00:00+01:00", title="1:1 (new time)", start="2026-06-22T11:00:00",
                       end="2026-06-22T11:30:00")
    assert split["id"] != sid
    titles = [(e["title"], e["start"]["local"][11:16]) for e in (await call(hub, "list_events", **span))["events"]]
    assert titles[:3] == [("1:1", "10:00"), ("1:1", "15:00"), ("1:1", "10:00")]
    assert titles[3:] == [("1:1 (new time)", "11:00")] * 3

    current = await call(hub, "get_event", calendar_id="ada@example.com", event_id=sid)
    stale = await call(hub, "update_event", calendar_id="ada@example.com", event_id=sid, title="x", expected_etag="0" * 16)
    assert stale["code"] == "conflict"
    renamed = await call(hub, "update_event", calendar_id="ada@example.com", event_id=sid, title="Weekly 1:1",
                         expected_etag=current["etag"])
    assert renamed["title"] == "Weekly 1:1"

    assert (await call(hub, "delete_event", calendar_id="ada@example.com", event_id=sid, scope="this",
                       instance_start="2026-06-15T10:00:00+01:00"))["code"] == "invalid_argument"
    await call(hub, "delete_event", calendar_id="ada@example.com", event_id=sid, scope="this",
               instance_start="2026-06-15T10:00:00+01:00", confirm=True)
    remaining = [e["start"]["local"][:10] for e in (await call(hub, "list_events", **span))["events"] if e["id"] == sid]
    assert remaining == ["2026-06-01", "2026-06-09"]
    await call(hub, "delete_event", calendar_id="ada@example.com", event_id=split["id"], scope="this_and_following",
               instance_start="2026-06-29T11:00:00+01:00", confirm=True)
    tail = [e["start"]["local"][:10] for e in (await call(hub, "list_events", **span))["events"] if e["id"] == split["id"]]
    assert tail == ["2026-06-22"]
    await call(hub, "delete_event", calendar_id="ada@example.com", event_id=split["id"], confirm=True)
    assert (await call(hub, "get_event", calendar_id="ada@example.com", event_id=split["id"]))["code"] == "not_found"
    missing = await call(hub, "get_event", calendar_id="ada@example.com", event_id=sid, instance_start="2026-06-02T10:00:00+01:00")
    assert missing["code"] == "not_found"


async def test_invitations_free_busy_and_conflicts(hub: Hub) -> None:
    meeting = await call(hub, "create_event", calendar_id="ada@example.com", title="Review", start="2026-09-01T14:00:00",
                         end="2026-09-01T15:00:00", attendees=["alan@example.com"], reminders_minutes=[10])
    assert meeting["attendees"] == [{"email": "alan@example.com", "name": None, "response": "needs_action", "optional": False}]
    assert meeting["reminders_minutes"] == [10] and meeting["organizer"] == "ada@example.com"
    fb = await call(hub, "get_free_busy", participants=["alan@example.com", "nobody@example.com"],
                    start="2026-09-01T00:00:00Z", end="2026-09-02T00:00:00Z")
    alan, nobody = fb["participants"]
    assert alan["busy"] == [{"start": "2026-09-01T13:00:00Z", "end": "2026-09-01T14:00:00Z"}]
    assert nobody["error"] and nobody["busy"] == []
    clash = await call(hub, "create_event", calendar_id="alan@example.com", title="Dentist", start="2026-09-01T09:30:00",
                       end="2026-09-01T10:30:00", check_conflicts=True)
    assert clash["code"] == "conflict" and clash["details"]["busy"] == ["alan@example.com"]
    declined = await call(hub, "respond_to_event", calendar_id="ada@example.com", event_id=meeting["id"], response="declined")
    assert declined["code"] == "invalid_argument"  # Ada organizes; she is not an attendee
    answer = await call(hub, "respond_to_event", calendar_id="alan@example.com", event_id=meeting["id"], response="declined")
    assert answer["attendees"][0]["response"] == "declined"
    slots = await call(hub, "find_available_slots", participants=["ada@example.com", "alan@example.com"], duration_minutes=60,
                       window_start="2026-09-01T00:00:00Z", window_end="2026-09-02T00:00:00Z", buffer_minutes=15, max_results=10)
    starts = [s["start"]["utc"][11:16] for s in slots["slots"]]
    # London 08:00-16:00 UTC meets New York 13:00-21:00 UTC from 13:00 to 16:00; Ada's review holds
    # 13:00-14:00 and the 15-minute buffer pushes the first hour to 14:15 (Alan declined, so he is free).
    assert starts == ["14:15"]


async def test_now_and_calendars(hub: Hub) -> None:
    now = await call(hub, "now", zone="Asia/Tokyo")
    assert now["zone"] == "Asia/Tokyo" and now["local"].endswith("+09:00")
    assert abs(datetime.fromisoformat(now["utc"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert (await call(hub, "now", zone="Nowhere/City"))["code"] == "invalid_argument"
    calendars = (await call(hub, "list_calendars"))["calendars"]
    assert [(c["id"], c["zone"], c["primary"]) for c in calendars] == [("ada@example.com", "Europe/London", True),
                                                                       ("alan@example.com", "America/New_York", False)]


# -- properties of slot finding ------------------------------------------------------------

ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"]
BASE = datetime(2026, 3, 20, tzinfo=UTC)  # spans European and US DST changes


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    people = [f"p{i}" for i in range(draw(st.integers(1, 3)))]
    busy = {p: [(BASE + timedelta(minutes=s), BASE + timedelta(minutes=s + d))
                for s, d in draw(st.lists(st.tuples(st.integers(0, 14 * 24 * 60), st.integers(5, 300)), max_size=12))]
            for p in people}
    hours = {p: WorkingHours(zone=draw(st.sampled_from(ZONES)), start=draw(st.sampled_from(["07:00", "08:30", "09:00"])),
                             end=draw(st.sampled_from(["16:00", "17:30", "20:00"])),
                             days=draw(st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat"]), min_size=1, unique=True)))
             for p in people}
    return {"busy": busy, "hours": hours, "duration": timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60]))),
            "buffer": timedelta(minutes=draw(st.sampled_from([0, 5, 10]))),
            "granularity": timedelta(minutes=draw(st.sampled_from([5, 15, 30])))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_slots_never_overlap_busy_and_respect_working_hours(case: dict[str, Any]) -> None:
    start, end = BASE, BASE + timedelta(days=14)
    slots = find_slots(case["busy"], case["hours"], start, end, case["duration"], case["buffer"], case["granularity"], 20)
    for slot_start, slot_end in slots:
        assert slot_end - slot_start == case["duration"] and start <= slot_start and slot_end <= end
        for person, spans in case["busy"].items():
            for busy_start, busy_end in spans:
                assert slot_end + case["buffer"] <= busy_start or busy_end <= slot_start - case["buffer"], (person, slot_start)
            hours = case["hours"][person]
            local_start = slot_start.astimezone(ZoneInfo(hours.zone))
            local_end = slot_end.astimezone(ZoneInfo(hours.zone))
            assert local_start.strftime("%a").lower()[:3] in hours.days
            assert hours.start <= local_start.strftime("%H:%M") and (local_end.strftime("%H:%M") <= hours.end or
                                                                     (hours.end == "24:00"))
            assert local_start.date() == local_end.date() or local_end.strftime("%H:%M") == "00:00"
    assert slots == sorted(slots) and len({s for s, _ in slots}) == len(slots)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 500)), max_size=30))
def test_merge_is_a_disjoint_cover(raw: list[tuple[int, int]]) -> None:
    spans = [(BASE + timedelta(minutes=s), BASE + timedelta(minutes=s + d)) for s, d in raw]
    merged = merge(spans)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(merged, merged[1:]))
    for s, e in spans:
        assert any(ms <= s and e <= me for ms, me in merged)


def test_working_windows_follow_dst() -> None:
    hours = WorkingHours(zone="Europe/London", start="09:00", end="17:00", days=["fri", "mon"])
    windows = working_windows(hours, datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    starts = [w[0] for w in windows]
    assert datetime(2026, 3, 27, 9, tzinfo=UTC) in starts and datetime(2026, 3, 30, 8, tzinfo=UTC) in starts
