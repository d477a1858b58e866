"""`Last-Event-ID` on the hub's 2025-11-25 Streamable HTTP sessions (outside review interop16 #5: a GET with it
answered HTTP 500). A client whose call stream dropped resumes it and gets the answer; an id the hub never
issued opens a fresh GET stream; an id of a call's stream the hub no longer holds is 410, saying so.
Raw HTTP against a real hub process; the per-session store alone (`hub.frontends.http.resumable`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage

from hub.frontends.http.resumable import EventBudget, SessionEvents
from tests.conftest import echo_stdio, start_hub_http, write_config
from tests.hub.frontends.test_http_disconnect import open_session, server_stats, wait_for_calls

pytestmark = pytest.mark.anyio


async def events(response: httpx.Response) -> Any:
    """(id, data) of each SSE event of `response` as it arrives."""
    event_id, data = None, []
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line:
            if data or event_id:
                yield event_id, "\n".join(data)
            event_id, data = None, []


async def ready_hub(tmp_path: Path, procs: list, client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}))
    headers = await open_session(client, url)
    with anyio.fail_after(30):  # `serve` listens before its servers are up
        while (await server_stats(client, url))["state"] != "ready":
            await anyio.sleep(0.05)
    return url, headers


async def test_a_dropped_call_stream_is_resumed_with_its_answer(tmp_path: Path, procs: list) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        url, headers = await ready_hub(tmp_path, procs, client)
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "e__slow", "arguments": {"seconds": 1.0, "steps": 4}, "_meta": {"progressToken": "p"}}}
        last = None
        with anyio.fail_after(30):
            async with client.stream("POST", url, json=call, headers=headers) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for event_id, data in events(response):
                    last = event_id
                    if data and json.loads(data).get("method") == "notifications/progress":
                        break  # the stream drops mid-call
        assert last is not None, "events carry ids"
        await wait_for_calls(client, url, 1)  # the call ended while nobody listened
        resume = {"Accept": "text/event-stream", "Mcp-Session-Id": headers["Mcp-Session-Id"],
                  "Mcp-Protocol-Version": "2025-11-25", "Last-Event-ID": last}
        with anyio.fail_after(30):
            async with client.stream("GET", url, headers=resume) as resumed:
                assert resumed.status_code == 200
                async for _, data in events(resumed):
                    if data and (message := json.loads(data)).get("id") == 7:
                        assert message["result"]["content"][0]["text"] == "done"
                        break
                else:
                    pytest.fail("the answer was not replayed")


async def test_an_id_the_hub_never_issued_opens_a_fresh_stream_and_a_lost_calls_id_is_gone(
        tmp_path: Path, procs: list) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        url, headers = await ready_hub(tmp_path, procs, client)
        get = {"Accept": "text/event-stream", "Mcp-Session-Id": headers["Mcp-Session-Id"],
               "Mcp-Protocol-Version": "2025-11-25"}
        async with client.stream("GET", url, headers={**get, "Last-Event-ID": "1"}) as fresh:
            assert fresh.status_code == 200 and fresh.headers["content-type"].startswith("text/event-stream")
        gone = await client.get(url, headers={**get, "Last-Event-ID": "r999999"})
        assert gone.status_code == 410
        assert "no longer holds" in gone.json()["error"]["message"]


def message(n: int, size: int = 10) -> types.JSONRPCNotification:
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"n": n, "pad": "x" * size})


async def replayed(store: SessionEvents, after: str) -> list[Any]:
    got: list[EventMessage] = []

    async def keep(event: EventMessage) -> None:
        got.append(event)

    await store.replay_events_after(after, keep)
    return [event.message.params["n"] for event in got]  # type: ignore[union-attr]


async def test_a_session_store_replays_one_stream_and_keeps_within_its_bounds() -> None:
    budget = EventBudget(cap=10_000)
    store = SessionEvents(budget, max_events=5, max_bytes=5_000)
    first = await store.store_event("1", None)
    ids = [await store.store_event("1" if n % 2 else GET_STREAM_KEY, message(n)) for n in range(4)]
    assert first.startswith("r") and ids[0].startswith("g")
    assert await replayed(store, first) == [1, 3]  # its own stream's only
    assert await replayed(store, ids[0]) == [2]
    for n in range(4, 10):
        await store.store_event("1", message(n))
    assert not store.holds(first) and len(store._events) == 5  # noqa: SLF001 — the oldest went first
    assert await store.store_event("1", message(99, size=6_000)) and not any(  # too big to keep
        event.message.params["n"] == 99 for event in store._events.values())  # type: ignore[union-attr]  # noqa: SLF001
    other = SessionEvents(budget, max_events=500, max_bytes=10_000)
    for n in range(60):
        await other.store_event("2", message(n, size=100))
    assert budget.used <= budget.cap
    store.clear()
    other.clear()
    assert budget.used == 0


async def test_another_callers_last_event_id_is_answered_as_for_no_session(tmp_path: Path, procs: list) -> None:
    """Bob naming alice's session with a made-up `Last-Event-ID` got 410, not the 404 of any session
    he does not own: it told him the session exists (re-check 17 #4)."""
    from tests.hub.auth.test_security import create_key, post_initialize

    data_dir = tmp_path / "data"
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()},
                                             hub={"data_dir": str(data_dir), "auth": {"enabled": True}}))
    alice, bob = create_key(data_dir, "alice", "e:read"), create_key(data_dir, "bob", "e:read")
    session = post_initialize(url, {"Authorization": f"Bearer {alice}"}).headers["mcp-session-id"]
    asked = {"Accept": "text/event-stream", "Mcp-Session-Id": session, "Last-Event-ID": "r999999"}
    async with httpx.AsyncClient(timeout=30) as client:
        other = await client.get(url, headers={**asked, "Authorization": f"Bearer {bob}"})
        nowhere = await client.get(url, headers={**asked, "Mcp-Session-Id": "0" * 32, "Authorization": f"Bearer {bob}"})
        own = await client.get(url, headers={**asked, "Authorization": f"Bearer {alice}"})
    assert other.status_code == nowhere.status_code == 404, (other.status_code, nowhere.status_code)
    assert own.status_code == 410, own.status_code


async def test_resuming_a_call_stream_before_a_big_answer_is_gone_not_an_empty_or_missing_answer(
        tmp_path: Path, procs: list) -> None:
    """A big result's long strings are lifted out and let go once written, so its replay carried its text
    empty; an event too big to keep was skipped, leaving the resumed client waiting. Resuming from before
    such an event is 410 now, as for an evicted one."""
    async with httpx.AsyncClient(timeout=60) as client:
        url, headers = await ready_hub(tmp_path, procs, client)
        text = "big answer " * 120_000  # 1.3 MB: lifted (hub.lifted) and over a session's event bytes
        call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
            "name": "e__echo", "arguments": {"text": text}, "_meta": {"progressToken": "p"}}}
        first = None
        with anyio.fail_after(60):
            async with client.stream("POST", url, json=call, headers=headers) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for event_id, data in events(response):
                    if event_id is not None and first is None:
                        first = event_id  # the priming event, before the answer
                    if data and json.loads(data).get("id") == 8:
                        assert json.loads(data)["result"]["content"][0]["text"] == text  # live, it is whole
                        break
        assert first is not None and first.startswith("r")
        resume = {"Accept": "text/event-stream", "Mcp-Session-Id": headers["Mcp-Session-Id"],
                  "Mcp-Protocol-Version": "2025-11-25", "Last-Event-ID": first}
        with anyio.fail_after(30):
            async with client.stream("GET", url, headers=resume) as resumed:
                if resumed.status_code == 200:
                    async for _, data in events(resumed):
                        if data and (message := json.loads(data)).get("id") == 8:
                            got = message["result"]["content"][0]["text"]
                            pytest.fail(f"the answer was replayed with {len(got)} of {len(text)} characters")
                body = await resumed.aread()
        assert resumed.status_code == 410, resumed.status_code
        assert "no longer holds whole" in json.loads(body)["error"]["message"]


async def test_a_gap_in_a_stream_is_remembered_only_for_that_stream_and_only_while_it_can_matter() -> None:
    from hub.lifted import _PLACEHOLDER  # noqa: PLC2701 — a real placeholder, as a lifted result holds it

    store = SessionEvents(EventBudget(cap=100_000), max_events=10, max_bytes=5_000)
    before = await store.store_event("1", None)
    other = await store.store_event("2", None)
    await store.store_event("1", message(1, size=6_000))  # too big to keep
    lifted = types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"text": _PLACEHOLDER + "1.0"})
    await store.store_event("2", lifted)
    after = await store.store_event("1", message(2))
    assert store.holds(before) and not store.whole_after(before)
    assert store.holds(other) and not store.whole_after(other)  # a lifted skeleton is not kept either
    assert store.whole_after(after)
    for n in range(12):  # the old events go; so do gaps no held event can be before
        await store.store_event(str(100 + n), None)
        await store.store_event(str(100 + n), message(n, size=6_000))
    assert len(store._gaps) <= 64 + 1  # noqa: SLF001
