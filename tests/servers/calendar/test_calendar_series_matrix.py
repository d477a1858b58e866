"""The same whole-series writes against every calendar backend (outside review writes28 #2–#4, #10–#14):
embedded and CalDAV (a real Radicale) share `edits.py`, Google and Graph have their own update/delete
paths (`google_moves`, `graph_moves`), so each scenario runs on all of them and a fix on one path cannot
miss the others. Google and Graph run against their fakes (`tests/fakes/`); the Google fake has no
all-day events, so the all-day scenarios skip it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from servers.calendar.providers.caldav import CalDavCalendar
from servers.calendar.providers.google import GoogleCalendar
from servers.calendar.providers.graph import GraphCalendar
from servers.calendar.server import create_server
from servers.calendar.store import EmbeddedCalendar
from tests.fakes.google_calendar import CAL, FakeGoogle
from tests.fakes.graph_calendar import BASE, CAL_ID, FakeGraph
from tests.servers.calendar.radicale_support import start_radicale

pytestmark = pytest.mark.anyio
BACKENDS = ["embedded", "caldav", "google", "graph"]
SPAN = {"start": "2026-03-25T00:00:00Z", "end": "2026-07-01T00:00:00Z"}


class Cal:
    """One backend behind the calendar MCP server, in the Europe/Paris-ish zone its calendar has."""

    def __init__(self, kind: str, client: Client, cal: str, fake: Any, store: Any = None) -> None:
        self.kind, self.client, self.cal, self.fake, self.store = kind, client, cal, fake, store

    async def __call__(self, tool: str, **args: Any) -> dict[str, Any]:
        answer = await self.client.call_tool(tool, {"calendar_id": self.cal, **args})
        if answer.structured_content is not None and not answer.is_error:
            return answer.structured_content
        return {"code": (answer.structured_content or {}).get("code", "error"),
                "message": " ".join(getattr(c, "text", "") for c in answer.content)}

    async def shown(self) -> list[tuple[str, str]]:
        page = await self("list_events", limit=100, **SPAN)
        assert "code" not in page, page
        return [(e["title"], (e["start"]["utc"] or e["start"]["date"])[:16]) for e in page["events"]]

    async def days(self) -> list[str]:
        return [when[:10] for _, when in await self.shown()]


@asynccontextmanager
async def backend(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> AsyncIterator[Cal]:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    fake: Any = None
    if kind == "embedded":
        store: Any = EmbeddedCalendar(tmp_path)
        await store.add_calendar("me@x.test", "Me", "Europe/Berlin", primary=True)
        cal = "me@x.test"
    elif kind == "caldav":
        dav = start_radicale(tmp_path, procs)
        store, cal = CalDavCalendar(dav.direct, "alice", "secret", "Europe/Berlin"), f"{dav.direct}work/"
    elif kind == "google":
        fake = FakeGoogle()
        monkeypatch.setenv("GOOGLE_CALENDAR_TOKEN", fake.token)
        monkeypatch.setenv("GOOGLE_CALENDAR_API", "http://google.test")
        store, cal = GoogleCalendar.from_env(tmp_path, transport=httpx.ASGITransport(app=fake.app())), CAL
    else:
        fake = FakeGraph()
        monkeypatch.setenv("GRAPH_TOKEN", fake.token)
        monkeypatch.setenv("GRAPH_API", BASE)
        store, cal = GraphCalendar.from_env(tmp_path, transport=httpx.ASGITransport(app=fake.app())), CAL_ID
    async with Client(create_server(store)) as client:
        yield Cal(kind, client, cal, fake, store)


def _until(kind: str) -> str:
    """A Monday-weekly rule ending on Monday 27 April, in the form each provider keeps (Graph: a date)."""
    return "FREQ=WEEKLY;BYDAY=MO;UNTIL=20260427" if kind == "graph" else "FREQ=WEEKLY;BYDAY=MO;UNTIL=20260427T235959Z"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_series_ending_by_until_moved_later_keeps_its_last_occurrence(kind: str, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule=_until(kind))
        assert await cal.days() == ["2026-04-06", "2026-04-13", "2026-04-20", "2026-04-27"]
        moved = await cal("update_event", event_id=made["id"], start="2026-04-13T09:00:00", end="2026-04-13T10:00:00")
        assert "code" not in moved, moved
        assert await cal.days() == ["2026-04-13", "2026-04-20", "2026-04-27", "2026-05-04"], "four occurrences, moved a week"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_the_moved_tail_of_a_split_keeps_its_last_occurrence(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule=_until(kind))
        split = await cal("update_event", event_id=made["id"], scope="this_and_following", instance_start="2026-04-13T09:00:00+02:00",
                          start="2026-04-20T09:00:00", end="2026-04-20T10:00:00")
        assert "code" not in split, split
        assert await cal.days() == ["2026-04-06", "2026-04-20", "2026-04-27", "2026-05-04"]


@pytest.mark.parametrize("kind", ["embedded", "caldav", "graph"])
async def test_an_all_day_series_ending_by_a_date_moved_later_keeps_its_last_occurrence(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="D", start="2026-04-06", end="2026-04-07", all_day=True,
                         rrule="FREQ=WEEKLY;UNTIL=20260427")
        moved = await cal("update_event", event_id=made["id"], start="2026-04-13", end="2026-04-14")
        assert "code" not in moved, moved
        assert await cal.days() == ["2026-04-13", "2026-04-20", "2026-04-27", "2026-05-04"]
        if kind != "graph":  # Graph splits only date-ended series; this one checks the DATE UNTIL of the tail
            other = await cal("create_event", title="E", start="2026-06-01", end="2026-06-02", all_day=True,
                              rrule="FREQ=WEEKLY;UNTIL=20260622")
            tail = await cal("update_event", event_id=other["id"], scope="this_and_following", instance_start="2026-06-08",
                             start="2026-06-09", end="2026-06-10")
            assert "code" not in tail, tail
            assert [d for t, d in await cal.shown() if t == "E"] == ["2026-06-01", "2026-06-09", "2026-06-16", "2026-06-23"]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_off_pattern_move_of_a_date_ended_series_is_refused(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                         rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20260427")
        moved = await cal("update_event", event_id=made["id"], start="2026-04-07T09:00:00", end="2026-04-07T10:00:00")
        if kind == "graph":  # Graph cannot tell BYDAY=MO on a Monday start from a bare FREQ=WEEKLY: it follows the move
            assert "code" not in moved, moved  # (cal28c #3, `graph_recurrence.to_rrule`)
            assert await cal.days() == ["2026-04-07", "2026-04-14", "2026-04-21", "2026-04-28"]
            return
        assert moved.get("code") == "invalid_argument" and "Tuesday" in moved["message"], moved
        assert await cal.days() == ["2026-04-06", "2026-04-13", "2026-04-20", "2026-04-27"], "nothing changed"


async def _deleted_and_edited(cal: Cal, deleted: str, edited: str) -> str:
    made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule="FREQ=DAILY;COUNT=4")
    gone = await cal("delete_event", event_id=made["id"], scope="this", instance_start=f"2026-04-{deleted}T09:00:00+02:00",
                     confirm=True)
    assert "code" not in gone, gone
    changed = await cal("update_event", event_id=made["id"], scope="this", instance_start=f"2026-04-{edited}T09:00:00+02:00",
                        title="edited")
    assert "code" not in changed, changed
    return str(made["id"])


@pytest.mark.parametrize("kind", BACKENDS)
async def test_moving_a_whole_series_keeps_its_deleted_and_edited_occurrences(kind: str, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        series = await _deleted_and_edited(cal, "07", "08")
        moved = await cal("update_event", event_id=series, start="2026-04-06T10:00:00", end="2026-04-06T11:00:00")
        assert "code" not in moved, moved
        assert await cal.shown() == [("W", "2026-04-06T08:00"), ("edited", "2026-04-08T08:00"), ("W", "2026-04-09T08:00")]
        again = await cal("update_event", event_id=series, zone="Europe/London")  # re-anchored: 10:00 London (09:00Z)
        assert "code" not in again, again
        assert await cal.shown() == [("W", "2026-04-06T09:00"), ("edited", "2026-04-08T09:00"), ("W", "2026-04-09T09:00")]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_stopping_a_series_keeps_the_first_occurrence_as_shown(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule="FREQ=DAILY;COUNT=4")
        await cal("delete_event", event_id=made["id"], scope="this", instance_start="2026-04-06T09:00:00+02:00", confirm=True)
        await cal("update_event", event_id=made["id"], scope="this", instance_start="2026-04-07T09:00:00+02:00", title="edited",
                  start="2026-04-07T11:00:00", end="2026-04-07T12:00:00")
        single = await cal("update_event", event_id=made["id"], rrule="")
        assert "code" not in single, single
        assert await cal.shown() == [("edited", "2026-04-07T09:00")]  # 11:00 in Berlin


@pytest.mark.parametrize("kind", BACKENDS)
async def test_deleting_the_last_occurrence_deletes_the_series(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        asked = {"title": "W", "start": "2026-04-06T09:00:00", "end": "2026-04-06T10:00:00", "rrule": "FREQ=DAILY;COUNT=2",
                 "idempotency_key": "w-series-1"}
        made = await cal("create_event", **asked)
        first = await cal("delete_event", event_id=made["id"], scope="this", instance_start="2026-04-06T09:00:00+02:00", confirm=True)
        assert first.get("scope") == "this", first
        last = await cal("delete_event", event_id=made["id"], scope="this", instance_start="2026-04-07T09:00:00+02:00", confirm=True)
        assert last.get("scope") == "all", last
        assert (await cal("get_event", event_id=made["id"])).get("code") == "not_found"
        assert "id" not in await cal("create_event", **asked), "the keyed create is not answered with an empty series"
        other = await cal("create_event", title="V", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                          rrule="FREQ=DAILY;UNTIL=20260408T235959Z")
        await cal("delete_event", event_id=other["id"], scope="this", instance_start="2026-04-06T09:00:00+02:00", confirm=True)
        rest = await cal("delete_event", event_id=other["id"], scope="this_and_following", instance_start="2026-04-07T09:00:00+02:00",
                         confirm=True)
        assert rest.get("scope") == "all", rest
        assert (await cal("get_event", event_id=other["id"])).get("code") == "not_found"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_retried_delete_of_one_occurrence_answers_as_the_first(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00", rrule="FREQ=DAILY;COUNT=4")
        for _ in range(2):
            answer = await cal("delete_event", event_id=made["id"], scope="this", instance_start="2026-04-07T09:00:00+02:00",
                               confirm=True)
            assert "code" not in answer and answer["scope"] == "this", answer
        assert await cal.days() == ["2026-04-06", "2026-04-08", "2026-04-09"]
        wrong = await cal("delete_event", event_id=made["id"], scope="this", instance_start="2026-04-07T10:00:00+02:00", confirm=True)
        assert wrong.get("code") == "not_found", "a time that never was an occurrence is still not found"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_new_rule_moves_the_start_onto_it(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                         rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3")
        changed = await cal("update_event", event_id=made["id"], rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=3")
        assert "code" not in changed, changed
        assert changed["start"]["utc"] == "2026-04-07T07:00:00Z", changed["start"]
        assert await cal.days() == ["2026-04-07", "2026-04-14", "2026-04-21"]
        if kind == "google":  # the fake's dateutil hides an off-rule first occurrence: check what is stored
            stored = cal.fake.events[made["id"]]
            assert stored["start"]["dateTime"].startswith("2026-04-07T09:00"), stored["start"]


@pytest.mark.parametrize("kind", ["embedded", "caldav"])
async def test_the_tail_of_an_all_day_count_series_ends_by_a_date(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  procs: list) -> None:
    """RFC 5545 §3.3.10: UNTIL has DTSTART's value type, so an all-day tail's UNTIL is a DATE (it was a DATE-TIME)."""
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="D", start="2026-05-04", end="2026-05-05", all_day=True, rrule="FREQ=WEEKLY;COUNT=4")
        tail = await cal("update_event", event_id=made["id"], scope="this_and_following", instance_start="2026-05-11",
                         start="2026-05-12", end="2026-05-13")
        assert "code" not in tail, tail
        assert tail["recurrence"] == ["RRULE:FREQ=WEEKLY;UNTIL=20260526"], tail["recurrence"]
        assert await cal.days() == ["2026-05-04", "2026-05-12", "2026-05-19", "2026-05-26"]


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_new_rule_with_a_new_start_lands_as_asked(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        made = await cal("create_event", title="W", start="2026-04-06T09:00:00", end="2026-04-06T10:00:00",
                         rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3")
        changed = await cal("update_event", event_id=made["id"], rrule="FREQ=WEEKLY;BYDAY=WE;COUNT=2",
                            start="2026-04-08T10:00:00", end="2026-04-08T11:00:00")
        assert "code" not in changed, changed
        assert await cal.shown() == [("W", "2026-04-08T08:00"), ("W", "2026-04-15T08:00")]
