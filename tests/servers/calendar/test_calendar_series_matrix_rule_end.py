"""Series writes judged by the rule's own end, and a split's attendee change, on every backend (outside review
cal29b of the edge fixes): a deleted last slot, or a later slot whose occurrence was moved earlier, still
counts as the series' (a retried delete of the last occurrence answered not_found, a cut at a deleted slot
kept a later moved occurrence, and a time that is no slot was "already past the end" on embedded/CalDAV); a
this-and-following attendee change keeps an invitee's own answer for an occurrence (embedded reset it); the
occurrence a split names takes the new values even where it had its own (all four kept its old title).
Reuses `test_calendar_series_matrix`'s backends. (CalDAV is left out of the attendee case: its respond
identity is no attendee address there.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.google_calendar import CAL as GOOGLE_ME
from tests.fakes.graph_calendar import ME as GRAPH_ME
from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, SPAN, backend
from tests.servers.calendar.test_calendar_series_matrix_edges import _rows
from tests.servers.calendar.test_calendar_series_matrix_moves import _until

pytestmark = pytest.mark.anyio
ME = {"embedded": "me@x.test", "google": GOOGLE_ME, "graph": GRAPH_ME}


# cal29b #1: a later slot whose occurrence was moved earlier
async def _setup(cal, kind):  # type: ignore[no-untyped-def]
    t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                  rrule="FREQ=DAILY;" + _until(kind, "20260615"))
    d = await cal("delete_event", event_id=t["id"], scope="this", instance_start="2026-06-14T09:00:00+02:00", confirm=True)
    assert "code" not in d, d
    m = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-15T09:00:00+02:00",
                  start="2026-06-11T06:00:00", end="2026-06-11T07:00:00", title="M")
    assert "code" not in m, m
    return t


@pytest.mark.parametrize("kind", BACKENDS)
async def test_cut_at_deleted_slot_removes_a_later_slot_moved_earlier(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await _setup(cal, kind)
        assert ("M", "2026-06-11T04:00") in await cal.shown()
        cut = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-14T09:00:00+02:00",
                        confirm=True)
        assert "code" not in cut, cut
        assert await cal.shown() == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T07:00"), ("T", "2026-06-12T07:00"),
                                     ("T", "2026-06-13T07:00")], "the cut at the 14th ends the series: slot 15 (shown on the 11th) goes"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_retried_this_delete_before_a_moved_later_slot_succeeds(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await _setup(cal, kind)
        before = await cal.shown()
        again = await cal("delete_event", event_id=t["id"], scope="this", instance_start="2026-06-14T09:00:00+02:00", confirm=True)
        assert "code" not in again, again
        assert await cal.shown() == before


@pytest.mark.parametrize("kind", BACKENDS)
async def test_off_slot_time_before_a_later_slot_moved_earlier_is_not_found(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """(c) without any deletion: 14 Jun 09:30 is no slot and slot 15 follows it (its occurrence shown on the 11th): not_found
    as on Google/Graph; embedded/CalDAV answer success ('already ends before')."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260615"))
        m = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-15T09:00:00+02:00",
                      start="2026-06-11T06:00:00", end="2026-06-11T07:00:00", title="M")
        assert "code" not in m, m
        before = await cal.shown()
        a = await cal("delete_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-14T09:30:00+02:00",
                      confirm=True)
        assert await cal.shown() == before
        assert a.get("code") == "not_found", a


# cal29b #2: a retried delete of the last occurrence
@pytest.mark.parametrize("end", ["count", "until"])
@pytest.mark.parametrize("kind", BACKENDS)
async def test_retried_delete_of_the_last_occurrence_succeeds(kind: str, end: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        rule = "FREQ=DAILY;COUNT=4" if end == "count" else "FREQ=DAILY;" + _until(kind, "20260613")
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00", rrule=rule)
        first = await cal("delete_event", event_id=t["id"], scope="this", instance_start="2026-06-13T09:00:00+02:00", confirm=True)
        assert "code" not in first, first
        before = await cal.shown()
        again = await cal("delete_event", event_id=t["id"], scope="this", instance_start="2026-06-13T09:00:00+02:00", confirm=True)
        assert await cal.shown() == before
        assert "code" not in again, again


# cal29b #3: a split's attendee change and an invitee's own answer
ME = {"embedded": "me@x.test", "google": GOOGLE_ME, "graph": GRAPH_ME}


@pytest.mark.parametrize("kind", ["embedded", "graph", "google"])
async def test_split_attendees_keep_the_occurrence_answer(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), attendees=[ME[kind], "b@x.test"])
        assert "code" not in t, t
        r = await cal("respond_to_event", event_id=t["id"], response="accepted", instance_start="2026-06-12T09:00:00+02:00")
        assert "code" not in r, r
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-11T09:00:00+02:00",
                      attendees=[ME[kind], "b@x.test", "c@x.test"])
        assert "code" not in s, s
        page = await cal("list_events", limit=100, **SPAN)
        twelfth = [e for e in page["events"] if e["start"]["utc"].startswith("2026-06-12")][0]
        got = sorted((a["email"], a.get("response")) for a in twelfth.get("attendees") or [])
        assert got == sorted([(ME[kind], "accepted"), ("b@x.test", "needs_action"), ("c@x.test", "needs_action")]), got


# Not Graph: there the mailbox's own answer is an occurrence's read-only `responseStatus`, which only the respond
# actions set (a split does not carry it); and Exchange does not let an organizer answer its own meeting anyway.
@pytest.mark.parametrize("kind", ["embedded", "google"])
@pytest.mark.parametrize("at", ["2026-06-11", "2026-06-12"])
async def test_split_attendees_reach_an_answered_occurrence(kind: str, at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            procs: list) -> None:
    """The split names the answered occurrence, or one before it: either way the new invitee reaches it and the
    answer given there stays; the other occurrences after the split show the new list, unanswered."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), attendees=[ME[kind], "b@x.test"])
        r = await cal("respond_to_event", event_id=t["id"], response="declined", instance_start="2026-06-12T09:00:00+02:00")
        assert "code" not in r, r
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start=f"{at}T09:00:00+02:00",
                      attendees=[ME[kind], "b@x.test", "c@x.test"])
        assert "code" not in s, s
        page = await cal("list_events", limit=100, **SPAN)
        shown = {e["start"]["utc"][:10]: sorted((a["email"], a.get("response")) for a in e.get("attendees") or [])
                 for e in page["events"]}
        assert shown["2026-06-12"] == sorted([(ME[kind], "declined"), ("b@x.test", "needs_action"), ("c@x.test", "needs_action")])
        assert {email for email, _ in shown["2026-06-13"]} == {ME[kind], "b@x.test", "c@x.test"}
        assert {email for email, _ in shown["2026-06-10"]} == {ME[kind], "b@x.test"}


# cal29b #4: the occurrence a split names, edited before, kept its own values
@pytest.mark.parametrize("kind", BACKENDS)
async def test_addressed_edited_occurrence_takes_the_new_value(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"))
        e = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-12T09:00:00+02:00", title="E", location="Old")
        assert "code" not in e, e
        s = await cal("update_event", event_id=t["id"], scope="this_and_following", instance_start="2026-06-12T09:00:00+02:00",
                      title="New", location="Room")
        assert "code" not in s, s
        rows = await _rows(cal)
        assert rows == [("T", "2026-06-10T07:00", None), ("T", "2026-06-11T07:00", None),
                                    ("New", "2026-06-12T07:00", "Room"), ("New", "2026-06-13T07:00", "Room")]


# cal29b #6: a location cleared with "" read "" on three backends and None on Graph
@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("scope", ["all", "this"])
async def test_a_cleared_location_reads_as_none(kind: str, scope: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260612"), location="Room 1")
        where = {"instance_start": "2026-06-11T09:00:00+02:00"} if scope == "this" else {}
        u = await cal("update_event", event_id=t["id"], scope=scope, location="", **where)
        assert "code" not in u, u
        assert u["location"] is None, u
        rows = await _rows(cal)
        assert [row[2] for row in rows] == (["Room 1", None, "Room 1"] if scope == "this" else [None, None, None]), rows
