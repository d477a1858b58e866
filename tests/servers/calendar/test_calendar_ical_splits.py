"""A failed "this and following" edit on the iCalendar backends (CalDAV on a real Radicale, and the
embedded store) leaves the calendar as it was, or says exactly what is left (outside review writes17 #2)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mcp import Client

from servers.calendar.model import EventChanges, NewEvent
from servers.calendar.providers.caldav import CalDavCalendar
from servers.calendar.server import create_server, make_backend
from servers.kit.landed import watching
from tests.servers.calendar.radicale_support import Dav, proxied, start_radicale, stored_uids

pytestmark = pytest.mark.anyio

Call = Callable[..., Awaitable[dict[str, Any]]]
SPLIT = {"scope": "this_and_following", "instance_start": "2026-03-04T09:00:00+01:00", "location": "Room 9"}
SPAN = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-10T00:00:00Z"}
DAYS = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]


@pytest.fixture
def dav(tmp_path: Path, procs: list) -> Dav:
    return start_radicale(tmp_path, procs)


async def _series(call: Call, cal: str) -> dict[str, Any]:
    return await call("create_event", calendar_id=cal, title="Stand-up", start="2026-03-02T09:00:00", end="2026-03-02T09:15:00",
                      rrule="FREQ=DAILY;COUNT=5")


async def _days(call: Call, cal: str) -> list[tuple[str, str | None]]:
    events = (await call("list_events", calendar_id=cal, **SPAN))["events"]
    return [(e["start"]["local"][:10], e.get("location")) for e in events]


async def _on_caldav(dav: Dav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: Callable[[Call, str], Awaitable[None]]) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    with proxied(dav):
        async with Client(create_server(CalDavCalendar(dav.url, "alice", "secret", "Europe/Berlin"))) as client:
            async def call(tool: str, **args: Any) -> dict[str, Any]:
                return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

            cal = (await call("list_calendars"))["calendars"][0]["id"]
            await check(call, cal)


async def test_caldav_split_whose_new_series_cannot_be_stored_keeps_every_occurrence(
        dav: Dav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def check(call: Call, cal: str) -> None:
        series = await _series(call, cal)
        dav.rule = lambda method, path, headers: 503 if method == "PUT" and "If-Match" not in headers else None
        failed = await call("update_event", calendar_id=cal, event_id=series["id"], **SPLIT)
        dav.rule = None
        assert failed["code"] == "unavailable" and failed["retryable"] is True
        assert await _days(call, cal) == [(d, None) for d in DAYS]
        assert stored_uids(dav) == [series["id"]]
        done = await call("update_event", calendar_id=cal, event_id=series["id"], **SPLIT)
        assert done["start"]["local"].startswith("2026-03-04T09:00") and done["location"] == "Room 9"
        assert await _days(call, cal) == [(d, "Room 9" if d >= "2026-03-04" else None) for d in DAYS]

    await _on_caldav(dav, tmp_path, monkeypatch, check)


async def test_caldav_split_whose_old_series_cannot_be_ended_deletes_the_new_one_again(
        dav: Dav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def check(call: Call, cal: str) -> None:
        series = await _series(call, cal)
        dav.rule = lambda method, path, headers: 503 if method == "PUT" and "If-Match" in headers else None
        failed = await call("update_event", calendar_id=cal, event_id=series["id"], **SPLIT)
        dav.rule = None
        # The new series was stored, then deleted again: a plain failure (retry is safe), nothing left.
        assert failed["code"] == "unavailable" and failed["retryable"] is True, failed
        assert ("DELETE" in [m for m, _ in dav.log]) and stored_uids(dav) == [series["id"]]
        assert await _days(call, cal) == [(d, None) for d in DAYS]
        assert (await call("update_event", calendar_id=cal, event_id=series["id"], **SPLIT))["location"] == "Room 9"

    await _on_caldav(dav, tmp_path, monkeypatch, check)


async def test_caldav_split_that_cannot_be_undone_says_what_is_left_and_is_not_retryable(
        dav: Dav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def check(call: Call, cal: str) -> None:
        series = await _series(call, cal)
        dav.rule = lambda method, path, headers: 503 if (method == "PUT" and "If-Match" in headers) or method == "DELETE" else None
        failed = await call("update_event", calendar_id=cal, event_id=series["id"], **SPLIT)
        dav.rule = None
        left = failed["details"]["left_series"]
        assert failed["code"] == "upstream_error" and failed["retryable"] is False and failed["details"]["partially_applied"]
        assert left in failed["message"] and sorted([series["id"], left]) == stored_uids(dav)
        # The old series still runs on; the new one repeats its last three days (what the message says to delete).
        shown = sorted(await _days(call, cal), key=str)
        assert shown == sorted([(d, None) for d in DAYS] + [(d, "Room 9") for d in DAYS[2:]], key=str)

    await _on_caldav(dav, tmp_path, monkeypatch, check)


async def test_caldav_writes_are_reported_to_the_tool_calls_watch(dav: Dav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caldav library does its own HTTP: its writes are reported (`servers.kit.landed`) so a failure
    after one is answered as partly applied."""
    with proxied(dav):
        backend = CalDavCalendar(dav.url, "alice", "secret", "Europe/Berlin")
        cal = (await backend.calendars())[0].id
        start = datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("Europe/Berlin"))
        with watching() as landed:
            made = await backend.create(NewEvent(calendar_id=cal, title="One", start=start, end=start + timedelta(hours=1),
                                                 zone="Europe/Berlin"))
            await backend.update(cal, made.id, "all", None, EventChanges(title="Two"), None)
            await backend.delete(cal, made.id, "all", None)
        assert [(i.provider, i.method, i.made) for i in landed] == [("CalDAV", "PUT", made.id)] * 2 + [("CalDAV", "DELETE", made.id)]
        assert all(i.path.startswith("/alice/work/") for i in landed)


async def test_embedded_split_whose_writes_fail_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded store writes each object in its own transaction: the same order and clean-up apply."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = make_backend("embedded", tmp_path)
    await backend.create_calendar("me@x.com", "Me", "Europe/Berlin", None)  # type: ignore[attr-defined]
    real_save = type(backend)._save
    failing: dict[str, bool] = {"new": False, "end": False}

    async def save(self: Any, calendar_id: str, uid: str, text: str, expected_etag: str | None) -> str:
        if failing["new" if expected_etag is None else "end"]:
            raise RuntimeError("disk full")
        return await real_save(self, calendar_id, uid, text, expected_etag)

    monkeypatch.setattr(type(backend), "_save", save)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        series = await _series(call, "me@x.com")
        for step in ("new", "end"):
            failing[step] = True
            failed = await call("update_event", calendar_id="me@x.com", event_id=series["id"], **SPLIT)
            failing[step] = False
            assert failed["code"] == "internal", failed
            assert await _days(call, "me@x.com") == [(d, None) for d in DAYS]
        done = await call("update_event", calendar_id="me@x.com", event_id=series["id"], **SPLIT)
        assert done["location"] == "Room 9"
        assert await _days(call, "me@x.com") == [(d, "Room 9" if d >= "2026-03-04" else None) for d in DAYS]
