"""A write that changes nothing writes nothing (outside review user34 #3): an update_event repeated with the values the
event already holds — the retry of an update whose answer was lost — stored the event again under a new etag, so
another agent that had read it in between got `conflict` on its own change for nothing. Ticketing and memory already
kept their versions; now the embedded and CalDAV calendars keep their etags (an RSVP given again too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.calendar.test_calendar_series_matrix import backend
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
