"""Outside review money19, calendar: a create is named by a handle the connector chooses, so an unclear
answer or a keyed retry never books twice (#1: Google, Graph, CalDAV, embedded); Graph refuses the
rules its patterns would change (#2); Google notifies attendees of every write (#3); an invitee with a
calendar in the embedded store sees and answers the invitation (#4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from caldav.lib import error as caldav_error
from mcp import Client

from servers.calendar.model import Attendee, NewEvent
from servers.calendar.providers.caldav import CalDavCalendar
from servers.calendar.server import create_server, make_backend
from tests.servers.calendar.radicale_support import proxied, start_radicale, stored_uids
from tests.servers.calendar.test_calendar_provider_writes import Session, _connect

pytestmark = pytest.mark.anyio
BOOK = {"title": "Contract review", "start": "2026-06-10T10:00:00", "end": "2026-06-10T11:00:00",
        "attendees": ["buyer@customer.example"]}


def _posts(fake: Any) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["method"] == "POST" and r["path"].endswith("/events")]


def _new(cal: str, key_day: int = 10) -> NewEvent:
    start = datetime(2026, 6, key_day, 10, tzinfo=ZoneInfo("Europe/Berlin"))
    return NewEvent(calendar_id=cal, title="Contract review", start=start, end=start + timedelta(hours=1), zone="Europe/Berlin",
                    attendees=[Attendee(email="buyer@customer.example")])


# -- #1: creates named by a handle the connector chooses -----------------------------------------

@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_keyed_create_answered_503_after_it_landed_is_found_not_booked_twice(
        kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    shim.rules = [("POST", lambda p: p.endswith("/events"), 503, "after")]  # stored by the provider, answered 503
    async with Client(create_server(backend)) as client:
        made = await Session(client, cal)("create_event", idempotency_key="book-1", **BOOK)
    assert "code" not in made and not shim.rules, made
    assert len(fake._masters()) == 1, "the meeting is booked once"
    handle = _posts(fake)[0]["json"]["id" if kind == "google" else "transactionId"]
    assert made["id"] == (handle if kind == "google" else fake._masters()[0]["id"])


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_keyed_create_retried_after_a_failure_asks_for_the_same_event(
        kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The hub's retry of a keyed call (or the agent's) reuses the handle derived from the key."""
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    field = "id" if kind == "google" else "transactionId"
    shim.rules = [("POST", lambda p: p.endswith("/events"), 503, "before")] * (1 if kind == "google" else 2)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        failed = await call("create_event", idempotency_key="book-2", **BOOK)
        # Google read the id back (absent: the plain error); Graph's look-up is the repeated POST, which failed too
        assert failed["code"] == ("unavailable" if kind == "google" else "upstream_error"), failed
        made = await call("create_event", idempotency_key="book-2", **BOOK)
        assert "code" not in made, made
        other = await call("create_event", **BOOK)  # no key: a handle of its own
        assert "code" not in other, other
    handles = [r["json"][field] for r in _posts(fake)]
    assert handles[0] == handles[-2] != handles[-1], handles
    assert len(fake._masters()) == 2


async def test_google_create_refused_as_a_duplicate_answers_the_event_its_handle_names(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """An insert that landed late (after a look-up found nothing) makes the retry a 409 duplicate: read back."""
    fake, _, backend, cal = _connect("google", monkeypatch, tmp_path)
    first = await backend.create(_new(cal), "book-3")
    again = await backend.create(_new(cal), "book-3")
    assert again.id == first.id and len(fake._masters()) == 1
    assert [r["params"].get("sendUpdates") for r in _posts(fake)] == ["all", "all"]


async def test_embedded_keyed_create_is_stored_once_under_its_derived_uid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = make_backend("embedded", tmp_path)
    await backend.create_calendar("me@x.com", "Me", "Europe/Berlin", None)  # type: ignore[attr-defined]
    first = await backend.create(_new("me@x.com"), "book-4")
    again = await backend.create(_new("me@x.com"), "book-4")
    other = await backend.create(_new("me@x.com"), None)
    assert again.id == first.id != other.id
    page = await backend.list_events("me@x.com", datetime(2026, 6, 1, tzinfo=ZoneInfo("UTC")),
                                     datetime(2026, 7, 1, tzinfo=ZoneInfo("UTC")), None, True, 10, None)
    assert len(page.events) == 2


async def test_caldav_create_whose_answer_was_lost_is_found_and_stored_once(tmp_path: Path, procs: list,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    dav = start_radicale(tmp_path, procs)
    with proxied(dav):
        backend = CalDavCalendar(dav.url, "alice", "secret", "Europe/Berlin")
        cal = (await backend.calendars())[0].id
        real_put = backend._client.put
        lost: list[str] = []

        def put_then_lose_the_answer(url: str, body: str, headers: Any = None) -> Any:
            answer = real_put(url, body, headers)
            if not lost:
                lost.append(url)
                raise caldav_error.DAVError("connection reset after the PUT")
            return answer

        backend._client.put = put_then_lose_the_answer  # type: ignore[method-assign]
        async with Client(create_server(backend)) as client:
            async def create() -> dict[str, Any]:
                return (await client.call_tool("create_event", {"calendar_id": cal, "idempotency_key": "book-5", **BOOK})
                        ).structured_content or {}

            made = await create()
            if "code" in made:  # what a hub's retry of the keyed call does
                made = await create()
        assert lost and stored_uids(dav) == [made["id"]], "found by its UID, stored once"
        first = await backend.create(_new(cal, 12), "book-6")
        again = await backend.create(_new(cal, 12), "book-6")  # the same keyed create again: If-None-Match refuses, read back
        assert again.id == first.id and stored_uids(dav) == sorted([made["id"], first.id])


# -- #2: Graph refuses rules its patterns would change ----------------------------------------------

@pytest.mark.parametrize(("rule", "day", "named"), [
    ("FREQ=YEARLY;BYMONTHDAY=15;COUNT=6", "2026-01-15", "no BYMONTH"),
    ("FREQ=MONTHLY;BYDAY=1MO,3WE;COUNT=4", "2026-01-05", "several BYDAY values"),
    ("FREQ=DAILY;INTERVAL=2;BYDAY=MO,TU;COUNT=4", "2026-01-19", "FREQ=DAILY;INTERVAL=2 with BYDAY"),
    ("FREQ=WEEKLY;BYDAY=MO;BYMONTH=3;COUNT=6", "2026-03-02", "BYMONTH with FREQ=WEEKLY"),
    ("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=6", "2026-01-31", "occurrence 2 is on 2026-03-31"),
])
async def test_graph_refuses_a_rule_it_would_book_as_another_schedule(rule: str, day: str, named: str,
                                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, _, backend, cal = _connect("graph", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        answer = await Session(client, cal)("create_event", title="Review", start=f"{day}T09:00:00", end=f"{day}T10:00:00",
                                            rrule=rule)
    assert answer.get("code") == "invalid_argument" and named in answer["message"], answer
    assert answer["details"]["field"] == "rrule" and not _posts(fake), "nothing was booked"


@pytest.mark.parametrize(("rule", "day"), [
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6", "2026-01-30"),
    ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=3", "2026-11-26"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;UNTIL=20260401T000000Z", "2026-01-06"),
    ("FREQ=DAILY;BYDAY=MO,TU;COUNT=4", "2026-01-19"),
])
async def test_graph_still_books_the_rules_it_expresses_exactly(rule: str, day: str, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Any) -> None:
    _, _, backend, cal = _connect("graph", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        answer = await Session(client, cal)("create_event", title="Review", start=f"{day}T09:00:00", end=f"{day}T10:00:00",
                                            rrule=rule)
    assert "code" not in answer, answer


# -- #3: Google notifies attendees ------------------------------------------------------------------

async def test_google_writes_send_updates_to_attendees(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, _, backend, cal = _connect("google", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        made = await call("create_event", **BOOK)
        assert "code" not in await call("update_event", event_id=made["id"], start="2026-06-11T10:00:00", end="2026-06-11T11:00:00")
        series = await call("create_event", title="Stand-up", start="2026-03-02T09:00:00", end="2026-03-02T09:15:00",
                            rrule="FREQ=DAILY;UNTIL=20260306T235959Z", attendees=["ann@customer.example"])
        assert "code" not in await call("update_event", event_id=series["id"], scope="this",
                                        instance_start="2026-03-03T09:00:00+01:00", title="Moved")
        split = await call("update_event", event_id=series["id"], scope="this_and_following",
                           instance_start="2026-03-04T09:00:00+01:00", location="Room 9")
        assert "code" not in split, split
        assert "code" not in await call("delete_event", event_id=made["id"], confirm=True)
    writes = [r for r in fake.requests if r["method"] in ("POST", "PATCH", "DELETE") and r["path"] != "/freeBusy"]
    assert len(writes) >= 6 and all(r["params"].get("sendUpdates") == "all" for r in writes), \
        [(r["method"], r["path"], r["params"]) for r in writes]


# -- #4: embedded invitations -----------------------------------------------------------------------

async def test_an_invitee_with_a_calendar_here_sees_and_declines_the_invitation(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    async with Client(create_server(make_backend("embedded", tmp_path))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content or {}

        for who in ("alice", "bob", "carol"):
            await call("create_calendar", calendar_id=f"{who}@example.com", name=who, zone="Europe/London")
        event = await call("create_event", calendar_id="alice@example.com", title="Budget", start="2026-06-10T10:00",
                           end="2026-06-10T11:00", attendees=["Bob@Example.com"])
        day = {"start": "2026-06-10T00:00:00Z", "end": "2026-06-11T00:00:00Z"}
        listed = (await call("list_events", calendar_id="bob@example.com", **day))["events"]
        assert [(e["id"], e["organizer"]) for e in listed] == [(event["id"], "alice@example.com")], listed
        assert (await call("get_event", calendar_id="bob@example.com", event_id=event["id"]))["title"] == "Budget"
        assert (await call("list_events", calendar_id="carol@example.com", **day))["events"] == []

        refused = await call("respond_to_event", calendar_id="carol@example.com", event_id=event["id"], response="declined")
        assert refused["code"] in ("not_found", "invalid_argument"), refused
        edit = await call("update_event", calendar_id="bob@example.com", event_id=event["id"], title="Mine now")
        assert edit["code"] == "forbidden" and "respond_to_event" in edit["message"], edit

        answer = await call("respond_to_event", calendar_id="bob@example.com", event_id=event["id"], response="declined")
        assert "code" not in answer and answer["attendees"][0]["response"] == "declined", answer
        organizer_view = await call("get_event", calendar_id="alice@example.com", event_id=event["id"])
        assert organizer_view["attendees"][0]["response"] == "declined"
        free = await call("get_free_busy", participants=["bob@example.com", "alice@example.com"], **day)
        assert [p["busy"] for p in free["participants"]] == [[], [{"start": "2026-06-10T09:00:00Z", "end": "2026-06-10T10:00:00Z"}]]
        slots = await call("find_available_slots", participants=["bob@example.com"], duration_minutes=60,
                           window_start="2026-06-10T09:00:00Z", window_end="2026-06-10T10:00:00Z",
                           working_hours={"bob@example.com": {"zone": "UTC", "start": "00:00", "end": "24:00"}})
        assert [s["start"]["utc"] for s in slots["slots"]] == ["2026-06-10T09:00:00Z"], "the declined hour is free again"
