"""A write that changes nothing writes nothing (outside review user34 #3): an update_event repeated with the values the
event already holds — the retry of an update whose answer was lost — stored the event again under a new etag, so
another agent that had read it in between got `conflict` on its own change for nothing. Ticketing and memory already
kept their versions; now the embedded and CalDAV calendars keep their etags (an RSVP given again too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, backend
from tests.servers.calendar.test_calendar_series_matrix_moves import _until
from tests.servers.calendar.test_calendar_series_matrix_rule_end import ME

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["embedded", "caldav"])
async def test_an_update_repeated_keeps_the_etag_and_another_writer_goes_on(kind: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="Plan", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00")
        renamed = await cal("update_event", event_id=made["id"], title="Plan v2", location="Room 4")
        assert "code" not in renamed and renamed["etag"] != made["etag"], renamed
        again = await cal("update_event", event_id=made["id"], title="Plan v2", location="Room 4")  # a retry
        assert "code" not in again and again["etag"] == renamed["etag"], (renamed, again)
        assert again["title"] == "Plan v2" and again["location"] == "Room 4"
        other = await cal("update_event", event_id=made["id"], description="agenda", expected_etag=renamed["etag"])
        assert "code" not in other and other["description"] == "agenda", other  # was: conflict


@pytest.mark.parametrize("kind", ["embedded", "caldav"])
async def test_one_occurrence_changed_again_to_the_same_keeps_the_etag(kind: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), attendees=[ME["embedded"], "b@x.test"])
        args = dict(event_id=t["id"], scope="this", instance_start="2026-06-11T09:00:00+02:00", title="T (moved room)")
        first = await cal("update_event", **args)
        second = await cal("update_event", **args)
        assert "code" not in second and second["etag"] == first["etag"], (first, second)
        if kind == "embedded":  # the calendar's owner answers (Radicale's calendar has no owner address here)
            yes = await cal("respond_to_event", event_id=t["id"], response="accepted")
            yes_again = await cal("respond_to_event", event_id=t["id"], response="accepted")
            assert "code" not in yes_again and yes_again["etag"] == yes["etag"], (yes, yes_again)


@pytest.mark.parametrize("kind", ["embedded", "google", "graph"])
async def test_an_occurrence_update_that_changes_nothing_writes_no_override(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """Outside review r35 #2: `this` with the occurrence's own values stored an identical override, moving the series'
    etag. (`this_and_following` still writes: the occurrence named says nothing of the later ones, r36 #1 below.)"""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"))
        before = await cal("get_event", event_id=t["id"])
        same = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-12T09:00:00+02:00",
                         title="T", start="2026-06-12T09:00:00", end="2026-06-12T10:00:00")
        assert "code" not in same and same["title"] == "T", same
        assert (await cal("get_event", event_id=t["id"]))["etag"] == before["etag"]
        stale = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-12T09:00:00+02:00",
                          title="T2", expected_etag="W/\"not-current\"" if kind == "graph" else '"not-current"')
        assert stale.get("code") == "conflict" and "get it again" in stale["message"], stale  # r36 #5: not the raw 412 text


@pytest.mark.parametrize("kind", ["embedded", "google", "graph"])
async def test_this_and_following_reaches_later_occurrences_when_the_named_one_already_shows_it(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """Outside review r36 #1: the named occurrence, renamed alone before, already showed the new title, so the call
    answered success and the later occurrences kept the old one."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"))
        alone = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-11T09:00:00+02:00", title="X")
        assert "code" not in alone, alone
        rest = await cal("update_event", event_id=t["id"], scope="this_and_following",
                         instance_start="2026-06-11T09:00:00+02:00", title="X")
        assert "code" not in rest, rest
        page = await cal("list_events", start="2026-06-01T00:00:00Z", end="2026-07-01T00:00:00Z")
        assert [e["title"] for e in page["events"]] == ["T", "X", "X", "X"], page


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("scope", ["this", "all"])
async def test_a_zone_only_change_is_written_once(kind: str, scope: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   procs: list) -> None:
    """Outside review r36 #2: Berlin to Paris moves no instant, and the change was answered done but not written.
    Review r37 #4: on Graph it was answered in the old zone and every repeat wrote again (Exchange keeps the zone the
    times were last written in as the event's `originalStartTimeZone`; the fake did not)."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"))
        where = {"scope": "this", "instance_start": "2026-06-12T09:00:00+02:00"} if scope == "this" else {}
        moved = await cal("update_event", event_id=t["id"], zone="Europe/Paris", **where)
        assert "code" not in moved and moved["start"]["zone"] == "Europe/Paris", moved
        written = await cal("get_event", event_id=t["id"])
        again = await cal("update_event", event_id=t["id"], zone="Europe/Paris", **where)
        assert "code" not in again and again["start"]["zone"] == "Europe/Paris", again
        assert (await cal("get_event", event_id=t["id"]))["etag"] == written["etag"], "a repeat wrote again"


async def test_an_empty_description_on_an_event_without_one_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           procs: list) -> None:
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="Plan", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00")
        same = await cal("update_event", event_id=made["id"], description="")  # as get_event shows it
        assert "code" not in same and same["etag"] == made["etag"], (made, same)


async def test_an_attendee_list_sent_back_keeps_what_another_client_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          procs: list) -> None:
    """Outside review r35 #5: each ATTENDEE was rebuilt keeping only its answer, role and name — a room another client
    marked CUTYPE=ROOM became a person, RSVP and X- parameters went — and an unchanged list was always a write."""
    async with backend("embedded", tmp_path, monkeypatch, procs) as cal:
        await cal.store._save(cal.cal, "apple@x.test", "\r\n".join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Apple Inc.//iCal//EN", "BEGIN:VEVENT", "UID:apple@x.test",
            "DTSTAMP:20260101T000000Z", "DTSTART:20260610T070000Z", "DTEND:20260610T080000Z", "SUMMARY:Review",
            "ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED;CN=Room 4;X-APPLE-CAPACITY=8:mailto:room4@x.test",
            "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT:mailto:b@x.test", "END:VEVENT", "END:VCALENDAR", ""]), None)
        shown = await cal("get_event", event_id="apple@x.test")
        same = await cal("update_event", event_id="apple@x.test", attendees=[a["email"] for a in reversed(shown["attendees"])])
        assert "code" not in same and same["etag"] == shown["etag"], (shown, same)  # the same people: nothing written
        more = await cal("update_event", event_id="apple@x.test", attendees=["room4@x.test", "b@x.test", "c@x.test"])
        assert "code" not in more, more
        text, _ = await cal.store._load(cal.cal, "apple@x.test")
        unfolded = text.replace("\r\n ", "")
        room = next(line for line in unfolded.splitlines() if "room4@x.test" in line)
        assert "CUTYPE=ROOM" in room and "X-APPLE-CAPACITY=8" in room and "PARTSTAT=ACCEPTED" in room, room
        assert "RSVP=TRUE" in next(line for line in unfolded.splitlines() if "b@x.test" in line)
        assert "c@x.test" in unfolded


@pytest.mark.parametrize("kind", ["embedded", "google", "graph"])
async def test_a_stale_etag_is_a_conflict_even_when_the_start_asked_is_shown(kind: str, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """Review r41 #3: a start-only move with a stale etag was answered with another writer's 10:00-10:15 reschedule
    (the move keeps the length it read: an hour); the no-op short-cut answers only a current or absent etag."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="Plan", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00")
        other = await cal("update_event", event_id=made["id"], start="2026-06-10T10:00:00", end="2026-06-10T10:15:00")
        assert "code" not in other, other
        stale = await cal("update_event", event_id=made["id"], start="2026-06-10T10:00:00", expected_etag=made["etag"])
        assert stale.get("code") == "conflict", stale
