"""The Microsoft Graph connector against a local fake of Graph v1.0, and the RRULE <-> pattern mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from mcp import Client

from servers.calendar.providers.graph import GraphCalendar
from servers.calendar.providers.graph_recurrence import to_graph, to_rrule
from servers.calendar.server import create_server
from servers.kit.errors import DomainError
from tests.fakes.graph_calendar import BASE, CAL_ID, ME, FakeGraph

pytestmark = pytest.mark.anyio
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("rrule", "pattern", "span"), [
    ("FREQ=DAILY;INTERVAL=2;COUNT=5", {"type": "daily", "interval": 2}, {"type": "numbered", "numberOfOccurrences": 5}),
    ("FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260331T215959Z", {"type": "weekly", "daysOfWeek": ["monday", "wednesday"]},
     {"type": "endDate", "endDate": "2026-03-31"}),
    ("FREQ=WEEKLY;BYDAY=MO,MO,WE", {"type": "weekly", "daysOfWeek": ["monday", "wednesday"]}, {"type": "noEnd"}),  # a day named twice: once
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", {"type": "weekly", "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"]},
     {"type": "noEnd"}),
    ("FREQ=MONTHLY;BYDAY=-1FR", {"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"}, {"type": "noEnd"}),
    ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2", {"type": "relativeMonthly", "daysOfWeek": ["tuesday"], "index": "second"}, {"type": "noEnd"}),
    ("FREQ=MONTHLY", {"type": "absoluteMonthly", "dayOfMonth": 26}, {"type": "noEnd"}),
    ("FREQ=YEARLY;BYMONTH=7;BYMONTHDAY=4", {"type": "absoluteYearly", "month": 7, "dayOfMonth": 4}, {"type": "noEnd"}),
])
def test_rrule_to_graph_pattern_and_back(rrule: str, pattern: dict[str, Any], span: dict[str, Any]) -> None:
    start = datetime(2026, 3, 26, 9, 0, tzinfo=BERLIN)
    converted = to_graph(rrule, start, "Europe/Berlin")
    assert pattern.items() <= converted["pattern"].items()
    assert span.items() <= converted["range"].items() and converted["range"]["startDate"] == "2026-03-26"
    again = to_graph(to_rrule(converted)[0], start, "Europe/Berlin")  # type: ignore[index]
    assert again == converted, "RRULE -> pattern -> RRULE -> pattern is stable"


@pytest.mark.parametrize("rrule", ["FREQ=HOURLY", "FREQ=DAILY;BYHOUR=9,17", "FREQ=MONTHLY;BYMONTHDAY=1,15", "FREQ=MONTHLY;BYDAY=5MO",
                                   "not a rule"])
def test_rrules_graph_cannot_express_are_refused(rrule: str) -> None:
    with pytest.raises(DomainError) as caught:
        to_graph(rrule, datetime(2026, 3, 26, 9, 0, tzinfo=BERLIN), "Europe/Berlin")
    assert caught.value.body.code == "invalid_argument" and caught.value.body.details == {"field": "rrule"}


async def test_graph_calendar(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeGraph()
    monkeypatch.setenv("GRAPH_TOKEN", fake.token)
    monkeypatch.setenv("GRAPH_API", BASE)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = create_server(GraphCalendar.from_env(tmp_path, transport=httpx.ASGITransport(app=fake.app())))
    async with Client(server) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content

        calendars = (await call("list_calendars"))["calendars"]
        assert calendars == [{"id": CAL_ID, "name": "Calendar", "zone": "Europe/Berlin", "primary": True, "read_only": False}], \
            "the mailbox's Windows zone name is mapped to IANA"
        series = await call("create_event", calendar_id=CAL_ID, title="Stand-up", start="2026-03-26T09:00:00", end="2026-03-26T09:15:00",
                            rrule="FREQ=DAILY;UNTIL=20260331T235959Z", attendees=[ME, "bob@contoso.test"], reminders_minutes=[10, 5])
        sent = [r for r in fake.requests if r["method"] == "POST"][-1]
        assert sent["json"]["start"] == {"dateTime": "2026-03-26T09:00:00", "timeZone": "Europe/Berlin"}
        assert sent["json"]["recurrence"] == {
            "pattern": {"interval": 1, "firstDayOfWeek": "monday", "type": "daily"},
            "range": {"type": "endDate", "startDate": "2026-03-26", "recurrenceTimeZone": "Europe/Berlin", "endDate": "2026-03-31"}}
        assert sent["json"]["reminderMinutesBeforeStart"] == 5 and sent["json"]["isReminderOn"] is True
        assert series["recurrence"] == ["RRULE:FREQ=DAILY;UNTIL=20260331"] and series["etag"].startswith('W/"')

        span = {"calendar_id": CAL_ID, "start": "2026-03-25T00:00:00Z", "end": "2026-04-05T00:00:00Z"}
        page = await call("list_events", limit=4, **span)
        view = [r for r in fake.requests if r["path"].endswith("/calendarView")][-1]
        assert view["params"]["$top"] == "4" and view["headers"]["prefer"] == 'outlook.timezone="Europe/Berlin"'
        assert [e["start"]["local"][11:16] for e in page["events"]] == ["09:00"] * 4 and page["next_cursor"]
        rest = await call("list_events", limit=4, cursor=page["next_cursor"], **span)
        assert len(rest["events"]) == 2 and rest["next_cursor"] is None, "UNTIL 31 Mar 23:59Z: the last is 31 Mar 09:00 Berlin"
        assert {e["start"]["utc"][11:13] for e in page["events"] + rest["events"]} == {"08", "07"}, "DST in Berlin on 29 March"
        assert all(e["id"] == series["id"] and e["instance_start"] for e in page["events"])
        forged = await call("list_events", cursor="eyJuZXh0IjogImh0dHBzOi8vZXZpbC50ZXN0L3gifQ", **span)
        assert forged["code"] == "invalid_argument", "a nextLink off the Graph origin is refused"
        masters = await call("list_events", expand=False, **span)
        assert [e["id"] for e in masters["events"]] == [series["id"]] and masters["events"][0]["recurrence"]
        assert (await call("list_events", query="nothing like it", **span))["events"] == []

        moved = await call("update_event", calendar_id=CAL_ID, event_id=series["id"], scope="this",
                           instance_start="2026-03-30T09:00:00+02:00", start="2026-03-30T11:00:00", end="2026-03-30T11:15:00")
        assert moved["start"]["local"].startswith("2026-03-30T11:00") and moved["instance_start"].startswith("2026-03-30T09:00")
        stale = await call("update_event", calendar_id=CAL_ID, event_id=series["id"], title="x", expected_etag='W/"old"')
        assert stale["code"] == "conflict"
        busy = await call("get_free_busy", participants=[CAL_ID, "ghost@contoso.test"], start="2026-03-30T00:00:00Z",
                          end="2026-03-31T00:00:00Z")
        schedule = [r for r in fake.requests if r["path"].endswith("/getSchedule")][-1]["json"]
        assert schedule["schedules"] == [ME, "ghost@contoso.test"], "a calendar id is asked for by its owner's address"
        assert busy["participants"][0]["busy"] == [{"start": "2026-03-30T09:00:00Z", "end": "2026-03-30T09:15:00Z"}]
        assert busy["participants"][1]["error"] == "ErrorMailboxNotFound"

        answered = await call("respond_to_event", calendar_id=CAL_ID, event_id=series["id"], response="tentative",
                              instance_start="2026-03-27T09:00:00+01:00")
        assert [r["path"] for r in fake.requests if r["method"] == "POST"][-1].endswith("/tentativelyAccept")
        assert next(a for a in answered["attendees"] if a["email"] == ME)["response"] == "tentative"
        await call("delete_event", calendar_id=CAL_ID, event_id=series["id"], scope="this", instance_start="2026-03-27T09:00:00+01:00",
                   confirm=True)
        split = await call("update_event", calendar_id=CAL_ID, event_id=series["id"], scope="this_and_following",
                           instance_start="2026-03-31T09:00:00+02:00", title="Stand-up v2")
        assert split["title"] == "Stand-up v2" and split["id"] != series["id"]
        ended = [r for r in fake.requests if r["method"] == "PATCH"][-1]["json"]["recurrence"]["range"]
        assert ended["type"] == "endDate" and ended["endDate"] == "2026-03-30"
        titles = [(e["title"], e["start"]["local"][:16]) for e in (await call("list_events", limit=50, **span))["events"]]
        assert titles == [("Stand-up", "2026-03-26T09:00"), ("Stand-up", "2026-03-28T09:00"), ("Stand-up", "2026-03-29T09:00"),
                          ("Stand-up", "2026-03-30T11:00"), ("Stand-up v2", "2026-03-31T09:00")]
        await call("delete_event", calendar_id=CAL_ID, event_id=split["id"], confirm=True)
        assert (await call("get_event", calendar_id=CAL_ID, event_id=split["id"]))["code"] == "not_found"

        offsite = await call("create_event", calendar_id=CAL_ID, title="Offsite", start="2026-04-02", end="2026-04-04", all_day=True)
        assert offsite["all_day"] and offsite["start"]["date"] == "2026-04-02" and offsite["end"]["date"] == "2026-04-04"
        refused = await call("create_event", calendar_id=CAL_ID, title="x", start="2026-04-02T10:00:00", end="2026-04-02T11:00:00",
                             rrule="FREQ=HOURLY;COUNT=3")
        assert refused["code"] == "invalid_argument" and "Graph cannot express" in refused["message"]
        fake.fail_next.append((429, {"Retry-After": "0"}, '{"error": {"code": "TooManyRequests", "message": "slow down"}}'))
        limited = await call("get_event", calendar_id=CAL_ID, event_id=offsite["id"])  # at once: the hub retries, not the kit
        assert limited["code"] == "rate_limited" and "slow down" in limited["message"]
        assert (await call("get_event", calendar_id=CAL_ID, event_id=offsite["id"]))["title"] == "Offsite"
        fake.fail_next.append((401, {}, '{"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}'))
        denied = await call("get_event", calendar_id=CAL_ID, event_id=offsite["id"])
        assert denied["code"] == "unauthorized" and fake.token not in str(denied)
