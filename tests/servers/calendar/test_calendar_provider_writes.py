"""Multi-step writes of the Google and Graph connectors (outside review writes16 #2, #4, #5): a
"this and following" split honours `expected_etag`, carries edited and deleted occurrences over, and a
failure at any step leaves the calendar as it was (or says exactly what is left); ending a series and
answering an invitation never overwrite a concurrent change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mcp import Client

from servers.calendar.providers.google import GoogleCalendar
from servers.calendar.providers.graph import GraphCalendar
from servers.calendar.server import create_server
from tests.fakes.google_calendar import CAL, FakeGoogle
from tests.fakes.graph_calendar import BASE, CAL_ID, FakeGraph

pytestmark = pytest.mark.anyio
SPAN = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-08T00:00:00Z"}
Rule = tuple[str, Callable[[str], bool], int, str]  # method, path test, status, "before" (not sent) or "after" (applied, answer lost)


class Faults:
    """An ASGI shim failing chosen provider requests, once each, in order of the rules."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: list[Rule] = []
        self.hook: Callable[[str, str], None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if self.hook is not None:
                self.hook(scope["method"], scope["path"])
            for rule in list(self.rules):
                method, matches, status, when = rule
                if scope["method"] == method and matches(scope["path"]):
                    self.rules.remove(rule)
                    if when == "after":
                        await self.app(scope, receive, _discard)
                    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": b'{"error": {"code": "Backend", "message": "Backend Error"}}'})
                    return
        await self.app(scope, receive, send)


async def _discard(message: Any) -> None:
    return None


def _connect(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[Any, Faults, Any, str]:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    if kind == "google":
        fake: Any = FakeGoogle()
        monkeypatch.setenv("GOOGLE_CALENDAR_TOKEN", fake.token)
        monkeypatch.setenv("GOOGLE_CALENDAR_API", "http://google.test")
        shim = Faults(fake.app())
        return fake, shim, GoogleCalendar.from_env(tmp_path, transport=httpx.ASGITransport(app=shim)), CAL
    fake = FakeGraph()
    monkeypatch.setenv("GRAPH_TOKEN", fake.token)
    monkeypatch.setenv("GRAPH_API", BASE)
    shim = Faults(fake.app())
    return fake, shim, GraphCalendar.from_env(tmp_path, transport=httpx.ASGITransport(app=shim)), CAL_ID


class Session:
    def __init__(self, client: Client, cal: str) -> None:
        self.client, self.cal = client, cal

    async def __call__(self, tool: str, **args: Any) -> dict[str, Any]:
        return (await self.client.call_tool(tool, {"calendar_id": self.cal, **args})).structured_content or {}

    async def shown(self) -> list[tuple[str, str, str | None]]:
        return [(e["start"]["local"][:16], e["title"], e.get("location")) for e in (await self("list_events", **SPAN))["events"]]

    async def series(self) -> str:
        """A daily stand-up 03-02..03-06 whose 03-05 was deleted and 03-06 retitled (and, alone, moved to 11:00)."""
        made = await self("create_event", title="Stand-up", start="2026-03-02T09:00:00", end="2026-03-02T09:15:00",
                          rrule="FREQ=DAILY;UNTIL=20260306T235959Z")
        assert "code" not in await self("delete_event", event_id=made["id"], scope="this", instance_start="2026-03-05T09:00:00+01:00",
                                        confirm=True)
        edited = await self("update_event", event_id=made["id"], scope="this", instance_start="2026-03-06T09:00:00+01:00",
                            title="Demo day", start="2026-03-06T11:00:00", end="2026-03-06T11:30:00")
        assert "code" not in edited, edited
        return str(made["id"])

    async def split(self, series: str, **extra: Any) -> dict[str, Any]:
        return await self("update_event", event_id=series, scope="this_and_following", instance_start="2026-03-04T09:00:00+01:00",
                          location="Room 9", **extra)


BEFORE = [("2026-03-02T09:00", "Stand-up", None), ("2026-03-03T09:00", "Stand-up", None), ("2026-03-04T09:00", "Stand-up", None),
          ("2026-03-06T11:00", "Demo day", None)]
AFTER = BEFORE[:2] + [("2026-03-04T09:00", "Stand-up", "Room 9"), ("2026-03-06T11:00", "Demo day", "Room 9")]


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_split_carries_edited_and_deleted_occurrences(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, _, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        assert await call.shown() == BEFORE
        split = await call.split(series)
        assert "code" not in split and split["id"] != series, split
        assert await call.shown() == AFTER, "03-05 stays deleted; 03-06 keeps its title and its own time, and takes the new place"
        assert len(fake._masters()) == 2


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_split_with_a_stale_etag_is_a_conflict_and_writes_nothing(kind: str, monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Any) -> None:
    fake, _, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        stale = (await call("get_event", event_id=series))["etag"]
        assert "code" not in await call("update_event", event_id=series, title="Stand-up (moved room)")
        writes = len([r for r in fake.requests if r["method"] != "GET"])
        refused = await call.split(series, expected_etag=stale)
        assert refused["code"] == "conflict" and "etag" in refused["message"], refused
        assert len([r for r in fake.requests if r["method"] != "GET"]) == writes, "nothing was written"
        fresh = (await call("get_event", event_id=series))["etag"]
        assert "code" not in await call.split(series, expected_etag=fresh)


def _faults(series: str, step: str) -> list[Rule]:
    def new_series(path: str) -> bool:
        return series not in path and "_" not in path.rsplit("/", 1)[-1] and not path.endswith("/events")

    def new_occurrence(path: str) -> bool:
        return series not in path and "_" in path.rsplit("/", 1)[-1]

    def old_series(path: str) -> bool:
        return path.endswith(series)

    return {
        "create": [("POST", lambda p: p.endswith("/events"), 503, "before")],
        "carry-delete": [("DELETE", new_occurrence, 503, "before")],
        "carry-patch": [("PATCH", new_occurrence, 503, "before")],
        "end": [("PATCH", old_series, 503, "before")],
        "end-raced": [("PATCH", old_series, 412, "before")],
        "end-and-undo": [("PATCH", old_series, 503, "before"), ("DELETE", new_series, 503, "before"),
                         ("DELETE", new_series, 503, "before")],  # the clean-up is asked twice
        "end-answer-lost": [("PATCH", old_series, 503, "after")],
    }[step]


@pytest.mark.parametrize("kind", ["google", "graph"])
@pytest.mark.parametrize(("step", "code"), [("create", "unavailable"), ("carry-delete", "unavailable"), ("carry-patch", "unavailable"),
                                            ("end", "unavailable"), ("end-raced", "conflict"), ("end-and-undo", "upstream_error"),
                                            ("end-answer-lost", None)])
async def test_a_failed_split_step_leaves_the_calendar_as_it_was(kind: str, step: str, code: str | None,
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        shim.rules = _faults(series, step)
        answer = await call.split(series)
        assert not shim.rules, "the fault was met"
        if step == "create" and kind == "graph":  # the create is repeated with its transactionId: Graph makes it once
            code = None
        if code is None:  # the end landed though its answer was lost: read back, it is a success
            assert "code" not in answer and await call.shown() == AFTER
            return
        assert answer["code"] == code, answer
        if step == "end-and-undo":  # the new series could not be removed: say exactly what is left
            left = next(m["id"] for m in fake._masters() if m["id"] != series)
            assert left in answer["message"] and "delete_event" in answer["message"] and answer["retryable"] is False
            assert answer["details"]["left_series"] == left and answer["details"]["series"] == series
            assert len(fake._masters()) == 2
            return
        assert answer["retryable"] is (code == "unavailable")
        assert await call.shown() == BEFORE and len(fake._masters()) == 1, "the calendar is as it was"
        assert "code" not in await call.split(series), "a retry completes the edit"
        assert await call.shown() == AFTER


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_deleting_following_occurrences_does_not_overwrite_a_concurrent_change(kind: str, monkeypatch: pytest.MonkeyPatch,
                                                                                    tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        etag = "etag" if kind == "google" else "@odata.etag"

        def concurrent(method: str, path: str) -> None:  # another client changes the series between our read and our write
            if method == "PATCH" and path.endswith(series):
                fake.events[series][etag] = '"changed-elsewhere"'
                shim.hook = None
        shim.hook = concurrent
        answer = await call("delete_event", event_id=series, scope="this_and_following", instance_start="2026-03-04T09:00:00+01:00",
                            confirm=True)
        assert answer["code"] == "conflict", answer
        assert await call.shown() == BEFORE


async def test_google_answer_is_reapplied_over_a_concurrent_attendee_change(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect("google", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        made = await call("create_event", title="Review", start="2026-03-02T09:00:00", end="2026-03-02T10:00:00",
                          attendees=[cal, "bob@acme.test"])

        def concurrent(method: str, path: str) -> None:
            if method == "PATCH":
                fake.events[made["id"]]["attendees"].append({"email": "carol@acme.test", "responseStatus": "needsAction"})
                fake.events[made["id"]]["etag"] = '"changed-elsewhere"'
                shim.hook = None
        shim.hook = concurrent
        answered = await call("respond_to_event", event_id=made["id"], response="accepted")
        assert "code" not in answered, answered
        people = {a["email"]: a["response"] for a in answered["attendees"]}
        assert people == {cal: "accepted", "bob@acme.test": "needs_action", "carol@acme.test": "needs_action"}, \
            "carol, added meanwhile, is kept"


async def test_graph_answer_survives_a_failed_read_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, shim, backend, cal = _connect("graph", monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        made = await call("create_event", title="Review", start="2026-03-02T09:00:00", end="2026-03-02T10:00:00")
        answered_at: list[str] = []

        def after_answer(method: str, path: str) -> None:
            if method == "POST" and path.endswith("/accept"):
                answered_at.append(path)
                shim.rules = [("GET", lambda p: p.endswith(made["id"]), 503, "before")]
                shim.hook = None
        shim.hook = after_answer
        answered = await call("respond_to_event", event_id=made["id"], response="accepted")
        assert answered_at and not shim.rules
        assert "code" not in answered and answered["id"] == made["id"], answered
        assert fake.events[made["id"]]["responseStatus"] == {"response": "accepted"}


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_series_change_an_edited_occurrence_refuses_says_it_is_partly_applied(kind: str, monkeypatch: pytest.MonkeyPatch,
                                                                                     tmp_path: Any) -> None:
    """A `scope="all"` change reaches the edited occurrences before the series (test_calendar_series_all_order): when
    one of those writes is refused, the answer says so and that the series is not changed yet, and the same call
    repeated finishes the change (occurrences already showing it are left as they are)."""
    _, shim, backend, cal = _connect(kind, monkeypatch, tmp_path)
    async with Client(create_server(backend)) as client:
        call = Session(client, cal)
        series = await call.series()
        shim.rules = [("PATCH", lambda path: not path.rstrip("/").endswith(series), 403, "before")]
        answer = await call("update_event", event_id=series, scope="all", location="Room 1")
        assert answer["code"] == "upstream_error" and answer["details"]["partially_applied"] is False, answer  # none landed
        assert answer["details"]["series_changed"] is False and "repeat the same call" in answer["message"], answer
        assert answer["details"]["occurrences_not_changed"] == 1, answer
        assert await call.shown() == BEFORE
        assert "code" not in await call("update_event", event_id=series, scope="all", location="Room 1")
        assert await call.shown() == [(day, title, "Room 1") for day, title, _ in BEFORE]
