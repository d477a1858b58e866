"""The Google Calendar connector against a local fake of API v3."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import Client

from servers.calendar.providers.google import GoogleCalendar
from servers.calendar.server import create_server
from tests.fakes.google_calendar import CAL, FakeGoogle

pytestmark = pytest.mark.anyio


async def test_google_calendar(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeGoogle()
    monkeypatch.setenv("GOOGLE_CALENDAR_TOKEN", fake.token)
    monkeypatch.setenv("GOOGLE_CALENDAR_API", "http://google.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = create_server(GoogleCalendar.from_env(tmp_path, transport=httpx.ASGITransport(app=fake.app())))
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content

        assert (await call("list_calendars"))["calendars"][0]["zone"] == "Europe/Paris"
        series = await call("create_event", calendar_id=CAL, title="Stand-up", start="2026-03-26T09:00:00", end="2026-03-26T09:15:00",
                            rrule="FREQ=DAILY;UNTIL=20260331T235959Z", attendees=["bob@acme.test"], reminders_minutes=[5])
        sent = [r for r in fake.requests if r["method"] == "POST"][-1]["json"]
        assert sent["start"] == {"dateTime": "2026-03-26T09:00:00+01:00", "timeZone": "Europe/Paris"}
        assert sent["recurrence"] == ["RRULE:FREQ=DAILY;UNTIL=20260331T235959Z"]
        assert sent["reminders"] == {"useDefault": False, "overrides": [{"method": "popup", "minutes": 5}]}
        span = {"calendar_id": CAL, "start": "2026-03-25T00:00:00Z", "end": "2026-04-05T00:00:00Z"}
        page = await call("list_events", limit=4, **span)
        params = [r for r in fake.requests if r["method"] == "GET" and r["path"].endswith("/events")][-1]["params"]
        assert params["singleEvents"] == "true" and params["orderBy"] == "startTime" and params["maxResults"] == "4"
        assert [e["start"]["local"][11:16] for e in page["events"]] == ["09:00"] * 4 and page["next_cursor"]
        rest = await call("list_events", limit=4, cursor=page["next_cursor"], **span)
        assert len(rest["events"]) == 2 and rest["next_cursor"] is None
        assert {e["start"]["utc"][11:13] for e in page["events"] + rest["events"]} == {"08", "07"}, "DST in Paris on 29 March"

        moved = await call("update_event", calendar_id=CAL, event_id=series["id"], scope="this",
                           instance_start="2026-03-30T09:00:00+02:00", start="2026-03-30T11:00:00", end="2026-03-30T11:15:00")
        assert moved["start"]["local"].startswith("2026-03-30T11:00") and moved["instance_start"].startswith("2026-03-30T09:00")
        stale = await call("update_event", calendar_id=CAL, event_id=series["id"], title="x", expected_etag='"old"')
        assert stale["code"] == "conflict"
        bob = await call("get_free_busy", participants=[CAL, "ghost@acme.test"], start="2026-03-30T00:00:00Z", end="2026-03-31T00:00:00Z")
        assert bob["participants"][0]["busy"] == [{"start": "2026-03-30T09:00:00Z", "end": "2026-03-30T09:15:00Z"}]
        assert bob["participants"][1]["error"] == "notFound"
        await call("delete_event", calendar_id=CAL, event_id=series["id"], scope="this", instance_start="2026-03-27T09:00:00+01:00",
                   confirm=True)
        split = await call("update_event", calendar_id=CAL, event_id=series["id"], scope="this_and_following",
                           instance_start="2026-03-31T09:00:00+02:00", title="Stand-up v2")
        assert split["title"] == "Stand-up v2" and split["id"] != series["id"]
        titles = [(e["title"], e["start"]["local"][:10]) for e in (await call("list_events", limit=50, **span))["events"]]
        assert titles == [("Stand-up", "2026-03-26"), ("Stand-up", "2026-03-28"), ("Stand-up", "2026-03-29"),
                          ("Stand-up", "2026-03-30"), ("Stand-up v2", "2026-03-31")]
        one = await call("get_event", calendar_id=CAL, event_id=series["id"], instance_start="2026-03-28T09:00:00+01:00")
        assert one["instance_start"].startswith("2026-03-28T09:00")
        assert (await call("respond_to_event", calendar_id=CAL, event_id=series["id"], response="accepted"))["code"] == "invalid_argument"
        await call("delete_event", calendar_id=CAL, event_id=split["id"], confirm=True)
        assert (await call("get_event", calendar_id=CAL, event_id=split["id"]))["code"] == "not_found"
        counted = await call("create_event", calendar_id=CAL, title="Course", start="2026-05-04T18:00:00", end="2026-05-04T19:00:00",
                             rrule="FREQ=WEEKLY;COUNT=4")
        refused = await call("update_event", calendar_id=CAL, event_id=counted["id"], scope="this_and_following",
                             instance_start="2026-05-11T18:00:00+02:00", title="x")
        assert refused["code"] == "invalid_argument" and "COUNT" in refused["message"]
        fake.fail_next.append((401, {}, '{"error": {"message": "Invalid Credentials"}}'))
        denied = await call("list_calendars")
        assert denied["code"] == "unauthorized" and fake.token not in str(denied)
