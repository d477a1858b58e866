"""Faults at each step of a whole-series change on Google and Graph (outside review cal32): a move whose answer was
lost said "try again later" and the repeat left occurrences moved on their own at the series' new slot (#1); on Graph
`expected_etag` stopped protecting the series once an occurrence was written (#2); a series write refused after its
occurrences took the change got the kit's "do not repeat" (#3); "repeat the same call" was marked not retryable, and
on Graph needed the series' new etag (#4); a rename repeated after a lost answer mailed the invitees twice (#5). And
outside review cal33: the Graph re-read failing got the kit's "do not repeat" (#1); a lost answer of the series write
that had landed was said not taken, its prescribed repeat refused (#2); Retry-After was dropped (#3); an invitee's RSVP
meanwhile was a conflict (#4); Graph wrote a series already showing the change again (#5); a move answered 504 was
"try again later" (#6)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fakes.google_calendar import CAL
from tests.servers.calendar.test_calendar_series_matrix import SPAN, backend
from tests.servers.calendar.test_calendar_series_matrix_moves import _until

pytestmark = pytest.mark.anyio


class Hook(httpx.AsyncBaseTransport):
    """Passes every request to the fake, unless `rule(request)` answers it (or raises) first."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.rule = inner, None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.rule is not None and (out := await self.rule(request)) is not None:
            return out
        return await self.inner.handle_async_request(request)


def hook(cal) -> Hook:  # type: ignore[no-untyped-def]
    h = Hook(cal.store.http._client._transport)
    cal.store.http._client._transport = h
    return h


async def series_with_two_moved(cal, kind: str) -> str:  # type: ignore[no-untyped-def]
    """Daily 10-13 June 09:00 (Berlin); the 11th and 12th moved on their own to 15:00."""
    t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                  rrule="FREQ=DAILY;" + _until(kind, "20260613"))
    for d in ("11", "12"):
        m = await cal("update_event", event_id=t["id"], scope="this", instance_start=f"2026-06-{d}T09:00:00+02:00",
                      start=f"2026-06-{d}T15:00:00", end=f"2026-06-{d}T16:00:00")
        assert "code" not in m, m
    return str(t["id"])


def series_patch(request: httpx.Request, sid: str) -> bool:
    return request.method == "PATCH" and request.url.path.endswith("/" + sid)


async def shown(cal):  # type: ignore[no-untyped-def]
    page = await cal("list_events", limit=100, **SPAN)
    return [(e["title"], e.get("location"), e["start"]["utc"][:16]) for e in page["events"]]


def _message(answer: dict) -> str:
    return answer.get("message", "")


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_refused_series_write_after_its_occurrences_says_what_to_do(kind, tmp_path, monkeypatch, procs) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, kind)

        async def rule(request: httpx.Request) -> httpx.Response | None:
            if series_patch(request, sid):  # the series itself refuses (the occurrences took it)
                return httpx.Response(403, json={"error": {"code": 403, "message": "Forbidden"}})
            return None

        h.rule = rule
        answer = await cal("update_event", event_id=sid, scope="all", title="New")
        h.rule = None
        assert "code" in answer, answer
        shows = await shown(cal)
        assert [t for t, _, _ in shows] == ["T", "New", "New", "T"], shows  # the occurrences were written first
        # the series reads unchanged, two occurrences show the change: the answer must say so and how to finish,
        # not "Do not repeat this call ... read the record" (the record, the series, reads as if nothing happened)
        assert "Do not repeat" not in _message(answer) and "occurrence" in _message(answer), _message(answer)


async def test_google_a_concurrent_change_refusing_the_series_write_says_what_was_written(tmp_path, monkeypatch, procs) -> None:
    async with backend("google", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, "google")
        etag = (await cal("get_event", event_id=sid))["etag"]
        fired: list[dict] = []

        async def rule(request: httpx.Request) -> None:
            if request.method == "PATCH" and not fired:  # after our read: someone else changes the room
                h.rule = None
                fired.append(await cal("update_event", event_id=sid, scope="all", location="Elsewhere"))
                h.rule = rule

        h.rule = rule
        ours = await cal("update_event", event_id=sid, scope="all", title="New", expected_etag=etag)
        h.rule = None
        assert fired and "code" not in fired[0], fired
        shows = await shown(cal)
        if any(t == "New" for t, _, _ in shows):  # a conflict that wrote occurrences must say it and how to go on
            assert "Do not repeat" not in _message(ours) and "occurrence" in _message(ours), (_message(ours), shows)


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_move_repeated_after_a_lost_answer_keeps_the_occurrences_moved_on_their_own(kind, tmp_path, monkeypatch, procs) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, kind)
        lose = [1]

        async def rule(request: httpx.Request) -> None:
            if series_patch(request, sid) and lose:  # the series PATCH lands, its answer is lost
                lose.clear()
                await h.inner.handle_async_request(request)
                raise httpx.ReadTimeout("answer lost", request=request)

        h.rule = rule
        move = {"scope": "all", "title": "New", "start": "2026-06-10T10:00:00", "end": "2026-06-10T11:00:00"}
        first = await cal("update_event", event_id=sid, **move)
        said = json.loads(first["message"])
        assert said["retryable"] is False and said["details"]["occurrences"] == 2 and "Do not repeat" in said["message"], said
        retry = await cal("update_event", event_id=sid, **move)  # a caller repeating anyway
        # either the repeat finishes the change right, or one of the two answers says what is left to fix
        told = "occurrence" in first.get("message", "") + retry.get("message", "")
        assert told or await shown(cal) == [("New", None, "2026-06-10T08:00"), ("New", None, "2026-06-11T13:00"),
                                            ("New", None, "2026-06-12T13:00"), ("New", None, "2026-06-13T08:00")], \
            (first, retry, await shown(cal))


async def test_graph_a_whole_series_rename_with_expected_etag_does_not_overwrite_a_concurrent_change(tmp_path, monkeypatch, procs) -> None:
    async with backend("graph", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, "graph")
        etag = (await cal("get_event", event_id=sid))["etag"]
        fired: list[dict] = []

        async def rule(request: httpx.Request) -> None:
            if request.method == "PATCH" and not fired:  # after our read: someone else moves the meeting to another room
                h.rule = None
                fired.append(await cal("update_event", event_id=sid, scope="all", location="Elsewhere"))
                h.rule = rule

        h.rule = rule
        ours = await cal("update_event", event_id=sid, scope="all", title="New", location="Mine", expected_etag=etag)
        h.rule = None
        assert fired and "code" not in fired[0], fired
        # the series changed after `etag` was read: the call must not answer success over the other writer's room
        series = await cal("get_event", event_id=sid)
        assert "code" in ours or series["location"] == "Elsewhere", (ours.get("location"), series["location"], await shown(cal))


def _failing_second_occurrence(h: Hook, sid: str, status: int) -> list[int]:
    seen: list[int] = []

    async def rule(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH" and not series_patch(request, sid):
            seen.append(1)
            if len(seen) == 2:  # the second edited occurrence refuses, once
                return httpx.Response(status, json={"error": {"code": status, "message": "no"}})
        return None

    h.rule = rule
    return seen


async def test_graph_the_same_call_repeated_with_its_expected_etag_finishes_the_change(tmp_path, monkeypatch, procs) -> None:
    async with backend("graph", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, "graph")
        etag = (await cal("get_event", event_id=sid))["etag"]
        _failing_second_occurrence(h, sid, 400)
        first = await cal("update_event", event_id=sid, scope="all", title="New", expected_etag=etag)
        h.rule = None
        assert "repeat the same call" in first["message"], first
        # Exchange changed the series' change key with the occurrence written: the answer gives the one to repeat with
        again = await cal("update_event", event_id=sid, scope="all", title="New",
                          expected_etag=json.loads(first["message"])["details"]["etag"])
        assert "code" not in again, (again, await shown(cal))
        assert [t for t, _, _ in await shown(cal)] == ["New"] * 4


@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_stop_before_the_series_on_a_passing_failure_is_marked_retryable(kind, tmp_path, monkeypatch, procs) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, kind)
        seen = _failing_second_occurrence(h, sid, 429)
        monkeypatch.setattr(cal.store.http, "retries", 0, raising=False)
        first = await cal("update_event", event_id=sid, scope="all", title="New")
        h.rule = None
        assert len(seen) >= 2 and "repeat the same call" in first["message"], first
        body = json.loads(first["message"])
        assert body["retryable"] is True, body  # it says "repeat the same call to finish it", and it would


async def test_google_a_rename_repeated_after_a_lost_answer_mails_the_invitees_once(tmp_path, monkeypatch, procs) -> None:
    async with backend("google", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;COUNT=3", attendees=[CAL, "b@x.test"])
        sid = t["id"]
        lose = [1]

        async def rule(request: httpx.Request) -> None:
            if series_patch(request, sid) and lose:  # the rename lands, its answer is lost
                lose.clear()
                await h.inner.handle_async_request(request)
                raise httpx.ReadTimeout("answer lost", request=request)

        h.rule = rule
        seen = len(cal.fake.requests)
        await cal("update_event", event_id=sid, scope="all", title="New")  # read back: it landed (either answer is right)
        assert "code" not in await cal("update_event", event_id=sid, scope="all", title="New")  # the caller repeats
        mailed = [r for r in cal.fake.requests[seen:] if r["method"] != "GET" and r["params"].get("sendUpdates") == "all"]
        # the repeat found the series already showing "New" everywhere: b@x.test is told of one rename once
        assert len(mailed) == 1, mailed


# cal33 #1
async def test_graph_series_reread_failing_after_occurrences_says_to_repeat(tmp_path, monkeypatch, procs) -> None:
    async with backend("graph", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, "graph")
        patched: list[int] = []

        async def rule(request: httpx.Request) -> httpx.Response | None:
            if request.method == "PATCH":
                patched.append(1)
            if request.method == "GET" and request.url.path.endswith("/" + sid) and len(patched) == 2:
                return httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message": "down"}})
            return None

        h.rule = rule
        answer = await cal("update_event", event_id=sid, scope="all", title="New")
        h.rule = None
        assert "code" in answer, answer
        assert [t for t, _, _ in await shown(cal)] == ["T", "New", "New", "T"]  # occurrences written, series not
        said = json.loads(answer["message"])
        # the series reads unchanged and two occurrences show the change: repeating the same call is what finishes it
        assert "Do not repeat" not in said["message"], said["message"]
        assert said["retryable"] is True and said["details"].get("series_changed") is False, said
        again = await cal("update_event", event_id=sid, scope="all", title="New")
        assert "code" not in again, again
        assert [t for t, _, _ in await shown(cal)] == ["New"] * 4


# cal33 #2
@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_repeat_as_told_after_a_lost_series_answer_finishes(kind, tmp_path, monkeypatch, procs) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, kind)
        etag = (await cal("get_event", event_id=sid))["etag"]
        lose = [1]

        async def rule(request: httpx.Request) -> None:
            if series_patch(request, sid) and lose:  # the series write lands, its answer is lost
                lose.clear()
                await h.inner.handle_async_request(request)
                raise httpx.ReadTimeout("answer lost", request=request)

        h.rule = rule
        first = await cal("update_event", event_id=sid, scope="all", title="New", expected_etag=etag)
        h.rule = None
        assert [t for t, _, _ in await shown(cal)] == ["New"] * 4  # it all landed
        if "code" not in first:  # settled by reading the series back: right
            return
        said = json.loads(first["message"]) if first["message"].startswith("{") else first
        # the call repeated as the answer says (its details.etag on Graph, the same call on Google)
        again = await cal("update_event", event_id=sid, scope="all", title="New",
                          expected_etag=said["details"].get("etag") or etag)
        assert "code" not in again, (said["message"], again)
        assert said["details"].get("series_changed") is not False, said  # it did change (or: unknown), not "did not"


# cal33 #3
@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_rate_limited_series_write_keeps_retry_after(kind, tmp_path, monkeypatch, procs) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, kind)

        async def rule(request: httpx.Request) -> httpx.Response | None:
            if series_patch(request, sid):
                return httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"code": 429, "message": "slow"}})
            return None

        h.rule = rule
        answer = await cal("update_event", event_id=sid, scope="all", title="New")
        h.rule = None
        said = json.loads(answer["message"]) if answer["message"].startswith("{") else answer
        assert said["retryable"] is True, said
        assert said.get("retry_after_s") == 7, said  # "repeat the same call", but not when: the provider said 7 s


# cal33 #4
async def test_graph_an_invitee_answer_meanwhile_is_no_conflict(tmp_path, monkeypatch, procs) -> None:
    async with backend("graph", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until("graph", "20260613"), attendees=["b@x.test"])
        sid = t["id"]
        for d in ("11", "12"):
            m = await cal("update_event", event_id=sid, scope="this", instance_start=f"2026-06-{d}T09:00:00+02:00",
                          start=f"2026-06-{d}T15:00:00", end=f"2026-06-{d}T16:00:00")
            assert "code" not in m, m
        master = cal.fake.events[sid]
        written: list[int] = []

        async def rule(request):  # type: ignore[no-untyped-def]
            if request.method == "PATCH" and not series_patch(request, sid):
                written.append(1)
                if len(written) == 2:  # meanwhile b@x.test accepts the series (Exchange updates the organizer's copy)
                    out = await h.inner.handle_async_request(request)
                    for entry in master["attendees"]:
                        entry["status"] = {"response": "accepted", "time": "2026-06-01T08:00:00Z"}
                    return out
            return None

        h.rule = rule
        answer = await cal("update_event", event_id=sid, scope="all", title="New")  # no expected_etag
        h.rule = None
        assert "code" not in answer, answer
        assert [t for t, _, _ in await shown(cal)] == ["New"] * 4


# cal33 #5
async def test_graph_a_repeat_after_a_lost_answer_does_not_write_the_series_again(tmp_path, monkeypatch, procs) -> None:
    async with backend("graph", tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        t = await cal("create_event", title="T", start="2026-06-10T09:00:00", end="2026-06-10T10:00:00",
                      rrule="FREQ=DAILY;" + _until("graph", "20260613"), attendees=["b@x.test"])
        sid = t["id"]
        m = await cal("update_event", event_id=sid, scope="this", instance_start="2026-06-11T09:00:00+02:00",
                      start="2026-06-11T15:00:00", end="2026-06-11T16:00:00")
        assert "code" not in m, m
        lose = [1]

        async def rule(request):  # type: ignore[no-untyped-def]
            if series_patch(request, sid) and lose:  # the rename lands, its answer is lost
                lose.clear()
                await h.inner.handle_async_request(request)
                raise httpx.ReadTimeout("answer lost", request=request)

        h.rule = rule
        await cal("update_event", event_id=sid, scope="all", title="New")  # read back: it landed (either answer is right)
        h.rule = None
        seen = len(cal.fake.requests)
        assert "code" not in await cal("update_event", event_id=sid, scope="all", title="New")  # the caller repeats
        writes = [r["path"] for r in cal.fake.requests[seen:] if r["method"] != "GET"]
        assert writes == [], writes  # everything already shows "New": nothing to write, no second update to b@x.test


# cal33 #6
@pytest.mark.parametrize("kind", ["google", "graph"])
async def test_a_move_answered_504_then_repeated_keeps_occurrences_moved_on_their_own(kind, tmp_path, monkeypatch, procs) -> None:
    async with backend(kind, tmp_path, monkeypatch, procs) as cal:
        h = hook(cal)
        sid = await series_with_two_moved(cal, kind)
        once = [1]

        async def rule(request: httpx.Request) -> httpx.Response | None:
            if series_patch(request, sid) and once:  # the move lands; the gateway answers 504
                once.clear()
                await h.inner.handle_async_request(request)
                return httpx.Response(504, json={"error": {"code": 504, "message": "Gateway Timeout"}})
            return None

        h.rule = rule
        move = {"scope": "all", "title": "New", "start": "2026-06-10T10:00:00", "end": "2026-06-10T11:00:00"}
        first = await cal("update_event", event_id=sid, **move)
        h.rule = None
        said = json.loads(first["message"]) if "code" in first and first["message"].startswith("{") else first
        if "code" in first and said.get("retryable") is False:
            return  # told not to repeat blindly and what to check: right
        if "code" in first:  # told to try again: doing so must end right
            again = await cal("update_event", event_id=sid, **move)
            assert "code" not in again, again
        # a plain move leaves the 11th and 12th at 15:00 Berlin (13:00 UTC), the others at the new 10:00 (08:00 UTC)
        assert [s for _, _, s in await shown(cal)] == ["2026-06-10T08:00", "2026-06-11T13:00", "2026-06-12T13:00",
                                                       "2026-06-13T08:00"], (said, await shown(cal))
