"""A whole-series change (`scope="all"`) of a text field reaches the series' edited occurrences on every backend: a
moved occurrence kept the old title while the call answered success (outside review cal29b #5, all four backends).
An occurrence keeps a field it changed itself, as a this-and-following change leaves it (`edits._reach_edited`),
and an invitee's own answer for an occurrence stays. Reuses `test_calendar_series_matrix`'s backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import BACKENDS, SPAN, backend
from tests.servers.calendar.test_calendar_series_matrix_edges import _rows
from tests.servers.calendar.test_calendar_series_matrix_moves import _until
from tests.servers.calendar.test_calendar_series_matrix_rule_end import ME

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_series_title_and_location_reach_moved_and_edited_occurrences(kind: str, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260613"), location="Old")
        moved = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-11T09:00:00+02:00",
                          start="2026-06-11T15:00:00", end="2026-06-11T16:00:00")
        assert "code" not in moved, moved
        own = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-12T09:00:00+02:00", title="Own")
        assert "code" not in own, own
        done = await cal("update_event", event_id=t["id"], scope="all", title="New", location="Room")
        assert "code" not in done, done
        assert await _rows(cal) == [("New", "2026-06-10T07:00", "Room"), ("New", "2026-06-11T13:00", "Room"),
                                    ("Own", "2026-06-12T07:00", "Room"), ("New", "2026-06-13T07:00", "Room")]


@pytest.mark.parametrize("kind", [k for k in BACKENDS if k != "caldav"])  # CalDAV's respond identity is no attendee
async def test_series_attendees_reach_an_answered_occurrence_keeping_its_answer(kind: str, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until(kind, "20260612"), attendees=[ME[kind], "b@x.test"])
        r = await cal("respond_to_event", event_id=t["id"], response="tentative", instance_start="2026-06-11T09:00:00+02:00")
        assert "code" not in r, r
        done = await cal("update_event", event_id=t["id"], scope="all", attendees=[ME[kind], "b@x.test", "c@x.test"])
        assert "code" not in done, done
        page = await cal("list_events", limit=100, **SPAN)
        shown = {e["start"]["utc"][:10]: {a["email"]: a.get("response") for a in e.get("attendees") or []} for e in page["events"]}
        assert set(shown["2026-06-11"]) == {ME[kind], "b@x.test", "c@x.test"}, shown
        if kind != "graph":  # Graph: the mailbox's own answer is the occurrence's read-only responseStatus (see rule_end)
            assert shown["2026-06-11"][ME[kind]] == "tentative", shown
        assert all(set(day) == {ME[kind], "b@x.test", "c@x.test"} for day in shown.values()), shown


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_rename_of_a_series_begun_years_ago_reaches_todays_moved_occurrence(kind: str, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """Google lists an unbounded series' occurrences up to a horizon: counted from the series' start, it ended in
    2024 for a weekly meeting begun in 2014, and a moved occurrence of 2026 kept the old title."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2014-01-06T09:00:00", end="2014-01-06T10:00:00", rrule="FREQ=WEEKLY;BYDAY=MO")
        moved = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-15T09:00:00+02:00",
                          start="2026-06-16T15:00:00", end="2026-06-16T16:00:00")
        assert "code" not in moved, moved
        done = await cal("update_event", event_id=t["id"], scope="all", title="New")
        assert "code" not in done, done
        page = await cal("list_events", limit=100, start="2026-06-08T00:00:00Z", end="2026-06-23T00:00:00Z")
        assert [(e["title"], e["start"]["utc"][:16]) for e in page["events"]] == [
            ("New", "2026-06-08T07:00"), ("New", "2026-06-16T13:00"), ("New", "2026-06-22T07:00")], page


@pytest.mark.parametrize("kind", BACKENDS)
async def test_moving_a_series_begun_years_ago_carries_todays_edited_occurrence(kind: str, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    """The same horizon when a whole series moves: today's edited occurrences of a series begun in 2014 were not
    carried to the new time on Google."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2014-01-06T09:00:00", end="2014-01-06T10:00:00", rrule="FREQ=WEEKLY;BYDAY=MO")
        own = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-15T09:00:00+02:00", title="Own")
        assert "code" not in own, own
        done = await cal("update_event", event_id=t["id"], scope="all", start="2014-01-06T10:00:00", end="2014-01-06T11:00:00")
        assert "code" not in done, done
        page = await cal("list_events", limit=100, start="2026-06-08T00:00:00Z", end="2026-06-23T00:00:00Z")
        assert [(e["title"], e["start"]["utc"][:16]) for e in page["events"]] == [
            ("T", "2026-06-08T08:00"), ("Own", "2026-06-15T08:00"), ("T", "2026-06-22T08:00")], page
