"""Outside review recheck21d, calendar: an occurrence's override owns its properties (#1: declining
one occurrence declined the series); a create's handle found taken is answered only if it still holds
what the create asks (#3); Google's respond notifies (#4); Graph's rule check on 29 February (#5)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mcp import Client

from servers.calendar import edits, ical
from servers.calendar.model import EventChanges, NewEvent
from servers.calendar.providers.caldav import CalDavCalendar
from servers.calendar.server import create_server, make_backend
from servers.kit.errors import DomainError
from tests.servers.calendar.radicale_support import proxied, start_radicale, stored_uids
from tests.servers.calendar.test_calendar_provider_writes import Session, _connect

pytestmark = pytest.mark.anyio

SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:daily@test
DTSTAMP:20260601T000000Z
DTSTART:20260610T100000Z
DTEND:20260610T110000Z
SUMMARY:Daily plan
RRULE:FREQ=DAILY;COUNT=3
ORGANIZER:mailto:alice@example.com
ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT:mailto:bob@example.com
CATEGORIES:planning
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Daily plan
TRIGGER:-PT10M
END:VALARM
END:VEVENT
END:VCALENDAR
"""


def _partstats(calendar: Any) -> dict[str, str]:
    return {str(c.get("RECURRENCE-ID").dt if "RECURRENCE-ID" in c else "master"): c["ATTENDEE"].params["PARTSTAT"]
            for c in calendar.walk("VEVENT")}


# -- #1: an override owns what it may later change ---------------------------------------------------

def test_declining_one_occurrence_leaves_the_series_answer_alone() -> None:
    calendar = edits.respond(ical.load(SERIES), "bob@example.com", "declined", datetime(2026, 6, 11, 10, tzinfo=UTC))
    assert _partstats(calendar) == {"master": "NEEDS-ACTION", "2026-06-11 10:00:00+00:00": "DECLINED"}


@pytest.mark.parametrize("scope", ["this", "this_and_following"])
def test_an_edit_made_from_the_series_shares_no_property_with_it(scope: str) -> None:
    """Every component `edits.change` builds from the master owns its values (and keeps its alarms)."""
    calendar = ical.load(SERIES)
    out = edits.change(calendar, scope, datetime(2026, 6, 11, 10, tzinfo=UTC), EventChanges(location="Room 9"))  # type: ignore[arg-type]
    base = ical.master(calendar)
    made = [c for result in out for c in result.walk("VEVENT") if c is not base]
    assert made
    for component in made:
        for key in ("ATTENDEE", "CATEGORIES", "ORGANIZER", "SUMMARY"):
            assert component[key] is not base[key], f"{key} is the master's own object"
        assert [str(a["TRIGGER"].to_ical().decode()) for a in component.walk("VALARM")] == ["-PT10M"], "the reminder is kept"
        component["ATTENDEE"].params["PARTSTAT"] = "DECLINED"
    assert base["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"


async def test_an_invitee_declines_one_occurrence_on_the_organizers_calendar_and_in_free_busy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    async with Client(create_server(make_backend("embedded", tmp_path))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content or {}

        for who in ("alice", "bob"):
            await call("create_calendar", calendar_id=f"{who}@example.com", name=who, zone="UTC")
        event = await call("create_event", calendar_id="alice@example.com", title="Daily plan", start="2026-06-10T10:00",
                           end="2026-06-10T11:00", attendees=["bob@example.com"], rrule="FREQ=DAILY;COUNT=3")
        answer = await call("respond_to_event", calendar_id="bob@example.com", event_id=event["id"], response="declined",
                            instance_start="2026-06-11T10:00")
        assert "code" not in answer and answer["attendees"][0]["response"] == "declined", answer
        span = {"start": "2026-06-10T00:00:00Z", "end": "2026-06-13T00:00:00Z"}
        seen = (await call("list_events", calendar_id="alice@example.com", **span))["events"]
        assert [(e["start"]["utc"][:10], e["attendees"][0]["response"]) for e in seen] == [
            ("2026-06-10", "needs_action"), ("2026-06-11", "declined"), ("2026-06-12", "needs_action")]
        free = await call("get_free_busy", participants=["bob@example.com"], **span)
        assert [b["start"][:16] for b in free["participants"][0]["busy"]] == ["2026-06-10T10:00", "2026-06-12T10:00"]


# -- #4: Google tells the organizer the answer --------------------------------------------------------

async def test_google_respond_sends_updates_to_the_organizer(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, _, backend, cal = _connect("google", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        made = await call("create_event", title="Supplier review", start="2026-06-10T10:00:00", end="2026-06-10T11:00:00",
                          attendees=[cal, "ann@partner.example"])
        answer = await call("respond_to_event", event_id=made["id"], response="declined")
        assert "code" not in answer, answer
    patches = [r for r in fake.requests if r["method"] == "PATCH"]
    assert [r["params"].get("sendUpdates") for r in patches] == ["all"], [(r["path"], r["params"]) for r in patches]


# -- #5: Graph's rule check on 29 February and the 31st -----------------------------------------------

@pytest.mark.parametrize("rule", ["FREQ=DAILY;INTERVAL=20;COUNT=3", "FREQ=WEEKLY;INTERVAL=20;COUNT=3",
                                  "FREQ=DAILY;INTERVAL=400;COUNT=2"])
@pytest.mark.parametrize("day", ["2028-02-29", "2026-01-31", "2026-12-31"])
async def test_graph_checks_long_interval_rules_from_29_february_and_the_31st(
        rule: str, day: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _, _, backend, cal = _connect("graph", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        answer = await Session(client, cal)("create_event", title="Review", start=f"{day}T09:00:00", end=f"{day}T10:00:00",
                                            rrule=rule)
    assert "code" not in answer, answer


@pytest.mark.parametrize("rule", ["FREQ=YEARLY;INTERVAL=20;COUNT=3", "FREQ=MONTHLY;INTERVAL=24;COUNT=3",
                                  "FREQ=WEEKLY;INTERVAL=30;BYDAY=MO,TU;COUNT=4"])
async def test_graph_answers_leap_day_yearly_and_monthly_rules_without_internal(
        rule: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _, _, backend, cal = _connect("graph", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        answer = await Session(client, cal)("create_event", title="Leap", start="2028-02-29T09:00:00",
                                            end="2028-02-29T10:00:00", rrule=rule)
    assert answer.get("code") in (None, "invalid_argument"), answer


# -- #3: a create's handle outlives its idempotency key --------------------------------------------------

def _asked(cal: str, zone: str = "Europe/Berlin") -> NewEvent:
    start = datetime(2026, 6, 10, 10, tzinfo=ZoneInfo(zone))
    return NewEvent(calendar_id=cal, title="Board meeting", start=start, end=start + timedelta(hours=1), zone=zone)


def _moved(zone: str = "Europe/Berlin") -> EventChanges:
    start = datetime(2026, 6, 10, 15, tzinfo=ZoneInfo(zone))
    return EventChanges(title="Supplier call", start=start, end=start + timedelta(hours=1))


async def _refused_as_made_earlier(backend: Any, cal: str, state: str) -> None:
    with pytest.raises(DomainError) as refused:
        await backend.create(_asked(cal), "board-2026-06-10")
    body = refused.value.body
    assert body.code == "conflict" and "idempotency_key was made earlier" in body.message and state in body.message, body
    assert "new idempotency_key" in body.message and body.details["reason"] == "idempotency_key_used"


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_keyed_create_whose_event_was_changed_since_is_a_conflict_not_that_event(
        kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, _, backend, cal = _connect(kind, monkeypatch, tmp_path)
    first = await backend.create(_asked(cal), "board-2026-06-10")
    again = await backend.create(_asked(cal), "board-2026-06-10")  # unchanged: the same answer
    assert again.id == first.id and again.title == "Board meeting"
    await backend.update(cal, first.id, "all", None, _moved(), None)
    await _refused_as_made_earlier(backend, cal, "changed")
    assert len(fake._masters()) == 1


async def test_google_keyed_create_whose_event_was_deleted_says_so_and_how_to_create_another(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Google keeps a deleted event's id taken (409 for ever): the answer names that, not 'already exists'."""
    fake, _, backend, cal = _connect("google", monkeypatch, tmp_path)
    first = await backend.create(_asked(cal), "board-2026-06-10")
    await backend.delete(cal, first.id, "all", None)
    await _refused_as_made_earlier(backend, cal, "deleted")
    assert (await backend.create(_asked(cal), "board-2026-06-10-b")).id != first.id, "a new key books it"


async def test_embedded_keyed_create_after_its_event_changed_or_went(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = make_backend("embedded", tmp_path)
    await backend.create_calendar("me@x.com", "Me", "Europe/Berlin", None)  # type: ignore[attr-defined]
    first = await backend.create(_asked("me@x.com"), "board-2026-06-10")
    assert (await backend.create(_asked("me@x.com"), "board-2026-06-10")).id == first.id
    await backend.update("me@x.com", first.id, "all", None, _moved(), None)
    await _refused_as_made_earlier(backend, "me@x.com", "changed")
    await backend.delete("me@x.com", first.id, "all", None)
    remade = await backend.create(_asked("me@x.com"), "board-2026-06-10")  # the UID is free again: booked anew
    assert remade.title == "Board meeting" and remade.start.utc == _asked("me@x.com").start


class _Later:
    """The `time` module as the idempotency ledger sees it, `ahead` seconds later."""

    def __init__(self, ahead: float) -> None:
        self.ahead = ahead

    def time(self) -> float:
        return time.time() + self.ahead

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


async def test_embedded_create_through_the_server_after_the_key_expired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reviewer's case: the ledger forgot the key (24 h), the event was moved and retitled since."""
    import servers.kit.idempotency as idempotency

    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    async with Client(create_server(make_backend("embedded", tmp_path))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content or {}

        await call("create_calendar", calendar_id="me@x.com", name="Me", zone="Europe/London")
        ask = {"calendar_id": "me@x.com", "title": "Board meeting", "start": "2026-06-10T10:00", "end": "2026-06-10T11:00",
               "idempotency_key": "board-meeting-2026-06-10"}
        made = await call("create_event", **ask)
        assert "code" not in await call("update_event", calendar_id="me@x.com", event_id=made["id"], title="Supplier call",
                                        start="2026-06-10T15:00", end="2026-06-10T16:00")
        monkeypatch.setattr(idempotency, "time", _Later(idempotency.IDEMPOTENCY_TTL_S + 3600))  # the ledger's clock only
        again = await call("create_event", **ask)
    assert again.get("code") == "conflict" and "new idempotency_key" in again["message"], again


async def test_caldav_keyed_create_whose_event_was_changed_since_is_a_conflict(tmp_path: Path, procs: list,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """CalDAV: the repeated PUT gets 412 (If-None-Match: *) and the UID is read back: changed → conflict."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    dav = start_radicale(tmp_path, procs)
    with proxied(dav):
        backend = CalDavCalendar(dav.url, "alice", "secret", "Europe/Berlin")
        cal = (await backend.calendars())[0].id
        first = await backend.create(_asked(cal), "board-2026-06-10")
        assert (await backend.create(_asked(cal), "board-2026-06-10")).id == first.id
        await backend.update(cal, first.id, "all", None, _moved(), None)
        await _refused_as_made_earlier(backend, cal, "changed")
        assert stored_uids(dav) == [first.id]
