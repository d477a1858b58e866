"""A whole-series change of text or attendees on Google and Graph, where the series and its edited occurrences are
separate writes (outside review cal31): the occurrences are written first and the series last, so a repeat after a
lost answer finishes the change (#1: the retry took the occurrences' old values for their own and answered
success); the etag answered is current (#3, Graph); invitees are mailed once (#5, Google); a failed listing of the
occurrences writes nothing (#6); Graph keeps an invitee already on a replaced list as it was (#2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.fakes.google_calendar import CAL
from tests.servers.calendar.test_calendar_series_matrix import SPAN, backend
from tests.servers.calendar.test_calendar_series_matrix_moves import _until
from tests.servers.calendar.test_calendar_series_matrix_rule_end import ME

pytestmark = pytest.mark.anyio


class Flaky(httpx.AsyncBaseTransport):
    """Loses the answer of the next PATCH of the series itself (`lose`: a read timeout after it landed), or answers
    the next listing of its occurrences 503 (`fail_listing`)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.lose, self.fail_listing = inner, "", False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        listing = request.method == "GET" and (request.url.path.endswith("/instances") or "exceptionOccurrences" in str(request.url))
        if self.fail_listing and listing:
            self.fail_listing = False
            return httpx.Response(503, json={"error": {"message": "busy"}})
        response = await self.inner.handle_async_request(request)
        if self.lose and request.method == "PATCH" and request.url.path.endswith("/" + self.lose):
            self.lose = ""
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def _flaky(cal) -> Flaky:  # type: ignore[no-untyped-def]
    flaky = Flaky(cal.store.http._client._transport)
    cal.store.http._client._transport = flaky
    return flaky


async def _series_with_a_moved_occurrence(cal, kind: str) -> str:  # type: ignore[no-untyped-def]
    t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                  rrule="FREQ=DAILY;" + _until(kind, "20260612"))
    moved = await cal("update_event", event_id=t["id"], scope="this", instance_start="2026-06-11T09:00:00+02:00",
                      start="2026-06-11T15:00:00", end="2026-06-11T16:00:00")
    assert "code" not in moved, moved
    return str(t["id"])


async def _titles(cal) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    page = await cal("list_events", limit=100, **SPAN)
    return [(e["title"], e["start"]["utc"][:16]) for e in page["events"]]


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_rename_repeated_after_a_lost_answer_reaches_the_moved_occurrence(kind: str, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        flaky = _flaky(cal)
        series = await _series_with_a_moved_occurrence(cal, kind)
        flaky.lose = series
        first = await cal("update_event", event_id=series, scope="all", title="New")
        assert "code" not in first, first  # the series read back shows the change: it landed (graph_whole, google update)
        retry = await cal("update_event", event_id=series, scope="all", title="New")
        assert "code" not in retry, retry
        assert await _titles(cal) == [("New", "2026-06-10T07:00"), ("New", "2026-06-11T13:00"), ("New", "2026-06-12T07:00")]


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_failed_listing_of_the_occurrences_writes_nothing(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        flaky = _flaky(cal)
        series = await _series_with_a_moved_occurrence(cal, kind)
        flaky.fail_listing = True
        answer = await cal("update_event", event_id=series, scope="all", title="New")
        assert answer["code"] == "unavailable", answer
        assert await _titles(cal) == [("T", "2026-06-10T07:00"), ("T", "2026-06-11T13:00"), ("T", "2026-06-12T07:00")]
        assert "code" not in await cal("update_event", event_id=series, scope="all", title="New")
        assert [title for title, _ in await _titles(cal)] == ["New", "New", "New"]


@pytest.mark.parametrize("kind", ["embedded", "google", "graph"])
async def test_the_etag_a_whole_series_rename_answers_is_current(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                procs: list) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        series = await _series_with_a_moved_occurrence(cal, kind)
        current = (await cal("get_event", event_id=series))["etag"]
        done = await cal("update_event", event_id=series, scope="all", title="New", expected_etag=current)
        assert "code" not in done, done
        assert done["etag"] == (await cal("get_event", event_id=series))["etag"], "the answered etag is already stale"
        again = await cal("update_event", event_id=series, scope="all", title="Newer", location="Room", expected_etag=done["etag"])
        assert "code" not in again, again
        stale = await cal("update_event", event_id=series, scope="all", title="x", expected_etag=current)
        assert stale["code"] == "conflict", stale
        assert [title for title, _ in await _titles(cal)] == ["Newer", "Newer", "Newer"], "a stale etag wrote nothing"


async def test_a_whole_series_rename_mails_the_invitees_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list) -> None:
    async with backend("google", tmp_path, monkeypatch, procs) as cal:
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;COUNT=10", attendees=[CAL, "b@x.test"])
        for day in range(10):
            at = (datetime(2026, 6, 10, 9) + timedelta(days=day)).isoformat() + "+02:00"
            assert "code" not in await cal("update_event", event_id=t["id"], scope="this", instance_start=at, description=f"agenda {day}")
        seen = len(cal.fake.requests)
        done = await cal("update_event", event_id=t["id"], scope="all", title="New")
        assert "code" not in done, done
        writes = [r for r in cal.fake.requests[seen:] if r["method"] != "GET"]
        assert len(writes) == 11 and [r["params"].get("sendUpdates") for r in writes].count("all") == 1, writes
        again = len(cal.fake.requests)
        assert "code" not in await cal("update_event", event_id=t["id"], scope="all", title="New")
        assert [r for r in cal.fake.requests[again:] if r["method"] != "GET"] == [], "what already shows it is not written (nor mailed)"


@pytest.mark.parametrize("how", ["single", "all", "this"])
async def test_graph_keeps_an_invitee_already_on_a_replaced_list(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 procs: list) -> None:
    async with backend("graph", tmp_path, monkeypatch, procs) as cal:
        rule = {} if how == "single" else {"rrule": "FREQ=DAILY;" + _until("graph", "20260612")}
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      attendees=[ME["graph"], "b@x.test"], **rule)
        stored = cal.fake._materialize(f"{t['id']}_20260611T0700", keep=True) if how == "this" else cal.fake.events[t["id"]]
        stored["attendees"] = [a | {"status": {"response": "accepted", "time": "2026-06-01T08:00:00Z"}, "type": "optional",
                                    "emailAddress": {"address": "b@x.test", "name": "Bea"}}
                               if a["emailAddress"]["address"] == "b@x.test" else a for a in stored["attendees"]]
        at = {"scope": "this", "instance_start": "2026-06-11T09:00:00+02:00"} if how == "this" else {}
        u = await cal("update_event", event_id=t["id"], attendees=[ME["graph"], "B@x.test", "c@x.test"], **at)
        assert "code" not in u, u
        got = u if how == "this" else await cal("get_event", event_id=t["id"])
        b = next(a for a in got["attendees"] if a["email"].lower() == "b@x.test")
        assert (b["name"], b["response"], b["optional"]) == ("Bea", "accepted", True), got["attendees"]
        c = next(a for a in got["attendees"] if a["email"] == "c@x.test")
        assert (c["response"], c["optional"]) == ("needs_action", False), c
