"""The CalDAV backend against a real Radicale server started by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import caldav
import icalendar
import pytest
from mcp import Client

from servers.calendar.providers.caldav import CalDavCalendar
from servers.calendar.server import create_server
from tests.servers.calendar.radicale_support import start_radicale

pytestmark = pytest.mark.anyio


@pytest.fixture
def radicale(tmp_path: Path, procs: list) -> dict[str, str]:
    dav = start_radicale(tmp_path, procs)
    return {"url": dav.direct, "calendar": f"{dav.direct}work/"}


async def test_caldav_round_trips_against_radicale(radicale: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = CalDavCalendar(radicale["url"], "alice", "secret", "Europe/Paris")
    cal = radicale["calendar"]
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content

        calendars = (await call("list_calendars"))["calendars"]
        assert calendars == [{"id": cal, "name": "Work", "zone": "Europe/Paris", "primary": True, "read_only": False}]
        series = await call("create_event", calendar_id=cal, title="Weekly sync", start="2026-03-23T09:00:00",
                            end="2026-03-23T10:00:00", rrule="FREQ=WEEKLY;COUNT=3", attendees=["bob@example.com"])
        span = {"calendar_id": cal, "start": "2026-03-20T00:00:00Z", "end": "2026-04-20T00:00:00Z"}
        events = (await call("list_events", **span))["events"]
        # Paris moves to summer time on 29 March: 09:00 local stays 09:00, UTC moves from 08:00 to 07:00.
        assert [(e["start"]["local"][:16], e["start"]["utc"][11:16]) for e in events] == [
            ("2026-03-23T09:00", "08:00"), ("2026-03-30T09:00", "07:00"), ("2026-04-06T09:00", "07:00")]
        moved = await call("update_event", calendar_id=cal, event_id=series["id"], scope="this",
                           instance_start="2026-03-30T09:00:00+02:00", start="2026-03-31T14:00:00", end="2026-03-31T15:00:00")
        assert moved["start"]["local"].startswith("2026-03-31T14:00")
        fetched = await call("get_event", calendar_id=cal, event_id=series["id"])
        renamed = await call("update_event", calendar_id=cal, event_id=series["id"], title="Weekly sync (renamed)",
                             expected_etag=fetched["etag"])
        assert renamed["title"] == "Weekly sync (renamed)"
        stale = await call("update_event", calendar_id=cal, event_id=series["id"], title="x", expected_etag=fetched["etag"])
        assert stale["code"] == "conflict"
        titles = [(e["title"], e["start"]["local"][:10]) for e in (await call("list_events", **span))["events"]]
        # the moved occurrence never changed its title: the series' new one reaches it (outside review cal29b #5)
        assert titles == [("Weekly sync (renamed)", "2026-03-23"), ("Weekly sync (renamed)", "2026-03-31"),
                          ("Weekly sync (renamed)", "2026-04-06")]
        # What Radicale stores is real iCalendar: read it back with a plain CalDAV client.
        raw = caldav.DAVClient(url=radicale["url"], username="alice", password="secret", require_tls=False)
        stored = raw.calendar(url=cal).event_by_uid(series["id"]).data
        assert "RRULE:FREQ=WEEKLY;COUNT=3" in stored and "RECURRENCE-ID" in stored and "TZID=Europe/Paris" in stored
        busy = (await call("get_free_busy", participants=[cal], start="2026-03-23T00:00:00Z", end="2026-03-24T00:00:00Z"))
        assert busy["participants"][0]["busy"] == [{"start": "2026-03-23T08:00:00Z", "end": "2026-03-23T09:00:00Z"}]
        await call("delete_event", calendar_id=cal, event_id=series["id"], scope="this", instance_start="2026-04-06T09:00:00+02:00",
                   confirm=True)
        assert len((await call("list_events", **span))["events"]) == 2
        await call("delete_event", calendar_id=cal, event_id=series["id"], confirm=True)
        assert (await call("list_events", **span))["events"] == []
        assert (await call("get_event", calendar_id=cal, event_id=series["id"]))["code"] == "not_found"

    wrong = CalDavCalendar(radicale["url"], "alice", "wrong", "UTC")
    async with Client(create_server(wrong)) as client:
        denied = (await client.call_tool("list_calendars", {})).structured_content
        assert denied["code"] == "unauthorized" and "wrong" not in str(denied)


async def test_caldav_writes_are_conditional_so_a_write_in_between_is_never_lost(radicale: dict[str, str], tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Another client writes the event between our read and our PUT: our PUT carries If-Match, the
    server refuses it (412), and the update is merged onto the newer event (no expected_etag) or
    refused as `conflict` (a stale expected_etag) — never written over the other client's change."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = CalDavCalendar(radicale["url"], "alice", "secret", "Europe/Paris")
    cal = radicale["calendar"]
    other = caldav.DAVClient(url=radicale["url"], username="alice", password="secret", require_tls=False).calendar(url=cal)
    sent = backend._client.put
    pending: list[str] = []

    def put_after_another_writer(url: str, body: str, headers: Any = None) -> Any:
        if pending:  # the other client's write lands just before ours reaches the server
            uid, location = pending.pop(), f"Elsewhere {len(pending)}"
            obj = other.event_by_uid(uid)
            parsed = icalendar.Calendar.from_ical(obj.data)
            event = next(iter(parsed.walk("VEVENT")))
            event.pop("LOCATION", None)
            event.add("location", location)
            obj.data = parsed.to_ical().decode()
            obj.save()
        return sent(url, body, headers)

    monkeypatch.setattr(backend._client, "put", put_after_another_writer)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content

        made = await call("create_event", calendar_id=cal, title="C0", start="2026-06-01T10:00:00", end="2026-06-01T11:00:00")
        pending.append(made["id"])
        renamed = await call("update_event", calendar_id=cal, event_id=made["id"], title="T1")
        assert renamed.get("title") == "T1" and renamed.get("location") == "Elsewhere 0", renamed
        current = await call("get_event", calendar_id=cal, event_id=made["id"])
        assert (current["title"], current["location"]) == ("T1", "Elsewhere 0")
        pending.append(made["id"])
        stale = await call("update_event", calendar_id=cal, event_id=made["id"], description="D1", expected_etag=current["etag"])
        assert stale.get("code") == "conflict", stale
        after = await call("get_event", calendar_id=cal, event_id=made["id"])
        assert (after["description"], after["location"]) == ("", "Elsewhere 0")


@pytest.mark.parametrize("put_etag", [True, False], ids=["put-answers-etag", "put-answers-none"])
async def test_caldav_the_etag_a_write_answers_is_the_one_the_next_write_accepts(
    radicale: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, put_etag: bool
) -> None:
    """Re-check 8: Radicale stores a normalised body (reordered, with a VTIMEZONE), so the digest of the
    text we sent never matched a later read and every chained update was a spurious `conflict`. The etag
    is now that of the body the server stores — told ours by the PUT's ETag or, without one (RFC 4791
    §5.3.4), line by line — unless another write landed right after ours: then it stays stale, so the
    next update is refused rather than written over that change."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = CalDavCalendar(radicale["url"], "alice", "secret", "Europe/Paris")
    cal = radicale["calendar"]
    other = caldav.DAVClient(url=radicale["url"], username="alice", password="secret", require_tls=False).calendar(url=cal)
    sent, uid, race = backend._client.put, [], [False]

    def put(url: str, body: str, headers: Any = None) -> Any:
        response = sent(url, body, headers)
        if not put_etag:
            response.headers.pop("ETag", None)
        if race[0]:  # another client writes just after our PUT, before our re-read
            obj = other.event_by_uid(uid[0])
            obj.data = obj.data.replace("SUMMARY:", "SUMMARY:theirs ")
            obj.save()
        return response

    monkeypatch.setattr(backend._client, "put", put)
    async with Client(create_server(backend)) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content

        made = await call("create_event", calendar_id=cal, title="A", start="2026-07-06T10:00:00", end="2026-07-06T11:00:00",
                          rrule="FREQ=WEEKLY;COUNT=3", attendees=["bob@example.com"], reminders_minutes=[15])
        uid.append(made["id"])
        assert made["etag"] == (await call("get_event", calendar_id=cal, event_id=made["id"]))["etag"]
        renamed = await call("update_event", calendar_id=cal, event_id=made["id"], title="B", expected_etag=made["etag"])
        assert renamed.get("title") == "B", renamed
        moved = await call("update_event", calendar_id=cal, event_id=made["id"], scope="this", expected_etag=renamed["etag"],
                           instance_start="2026-07-13T10:00:00+02:00", start="2026-07-14T12:00:00", end="2026-07-14T13:00:00")
        assert moved.get("start", {}).get("local", "").startswith("2026-07-14T12:00"), moved
        span = {"calendar_id": cal, "start": "2026-07-01T00:00:00Z", "end": "2026-08-01T00:00:00Z"}
        assert {e["etag"] for e in (await call("list_events", **span))["events"]} == {moved["etag"]}
        again = await call("update_event", calendar_id=cal, event_id=made["id"], title="C", expected_etag=moved["etag"])
        assert again.get("title") == "C", again

        race[0] = True
        raced = await call("update_event", calendar_id=cal, event_id=made["id"], title="D", expected_etag=again["etag"])
        race[0] = False
        stale = await call("update_event", calendar_id=cal, event_id=made["id"], title="E", expected_etag=raced["etag"])
        assert stale.get("code") == "conflict", stale
        assert (await call("get_event", calendar_id=cal, event_id=made["id"]))["title"] == "theirs D"
