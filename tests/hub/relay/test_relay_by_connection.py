"""What a server sends because of one client's request goes to that client connection, never to another
connection of the same principal (two windows of one key, or every client with auth off) — outside
review relay18:
- D1: a task's question (`related-task`) went to whichever connection of the task creator's principal
  had the newest call in flight; it goes to the connection that created the task (its `tasks/result`),
  and is refused, saying so, once that connection is gone.
- D2: a question a server asked while serving client A's `prompts/get` went to client B's call in
  flight; a prompt, read or completion now counts per connection, so it is refused.
- D5: a 2025-11-25 Streamable HTTP client without the optional GET stream got none of the log messages
  its own call caused; they go on the call's own stream now — and, a sibling, a message known to be one
  connection's call's no longer reaches the other connections of the same principal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from hub.hub import Hub
from tests.conftest import start_hub_http, write_config
from tests.hub.relay.test_relay_tasks import client_of, hub_of, raw, start_task
from tests.relay_support import Asked, Heard

pytestmark = pytest.mark.anyio

CROSSING = {"module": "tests.fixtures.crossing_server:server", "protocol": "legacy"}


async def until(check: Callable[[], bool]) -> None:
    """Wait (bounded, generously) for a state the hub reaches on its own."""
    with anyio.fail_after(30):
        while not check():
            await anyio.sleep(0.02)


def tracked(hub: Hub, server: str) -> int:
    """Calls of clients able to answer a server's requests in flight to `server` (`RequestRelay`)."""
    return len(hub.request_relay._in_flight.get(server, ()))  # noqa: SLF001 — the state the test waits for


async def test_a_tasks_question_goes_to_the_connection_that_created_it(tmp_path: Path) -> None:
    """D1: A waits on its task's `tasks/result`; B (the same principal: auth off) has the newest call in
    flight, and that call makes the server ask about A's task. Only A is asked, and A's answer is used."""
    a_asked, b_asked = Asked("A"), Asked("B")
    async with hub_of(tmp_path) as hub:
        async with client_of(hub, elicitation_callback=a_asked.elicitation) as a, \
                client_of(hub, elicitation_callback=b_asked.elicitation) as b:
            assert (await start_task(a))["task"]["taskId"] == "t:t1"
            results: dict[str, Any] = {}

            async def a_waits() -> None:
                results["a"] = await raw(a, "tasks/result", {"taskId": "t:t1"})

            async with anyio.create_task_group() as group:
                group.start_soon(a_waits)
                await until(lambda: tracked(hub, "t") == 1)  # A's tasks/result is in flight
                results["b"] = (await b.call_tool("t__ask_for", {"task": "t1"})).content[0].text  # type: ignore[union-attr]
                await b.call_tool("t__release", {"task": "t1"})
            assert b_asked.kinds == [], "B was asked about A's task"
            assert a_asked.kinds == ["elicitation"]
            assert results["b"] == "answered accept"


async def test_a_tasks_question_is_refused_once_its_creator_has_gone(tmp_path: Path) -> None:
    """D1, decided: with the creating connection gone nobody else may answer for its task — not another
    connection of the same principal — and the server is told why."""
    b_asked = Asked("B")
    async with hub_of(tmp_path) as hub:
        async with client_of(hub, elicitation_callback=Asked("A").elicitation) as a:
            assert (await start_task(a))["task"]["taskId"] == "t:t1"
        async with client_of(hub, elicitation_callback=b_asked.elicitation) as b:
            said = (await b.call_tool("t__ask_for", {"task": "t1"})).content[0].text  # type: ignore[union-attr]
    assert b_asked.kinds == [], "B was asked about the task of a connection that is gone"
    assert said.startswith("refused:") and "has disconnected" in said, said


async def test_a_question_caused_by_one_connections_prompt_never_reaches_another(tmp_path: Path, procs: list) -> None:
    """D2: auth off, so A and B are one principal. A's `prompts/get` asks while B's call is in flight:
    nothing says whose request asked, so it is refused, never put to B."""
    config = write_config(tmp_path, {"x": CROSSING}, {"data_dir": str(tmp_path / "hub")})
    url = start_hub_http(procs, config)
    a_asked, b_asked = Asked("A"), Asked("B")
    results: dict[str, Any] = {}
    with anyio.fail_after(120):
        async with Client(streamable_http_client(url), mode="legacy", elicitation_callback=a_asked.elicitation) as a, \
                Client(streamable_http_client(url), mode="legacy", elicitation_callback=b_asked.elicitation) as b:

            async def b_holds() -> None:
                results["b"] = json.loads((await b.call_tool("x__hold", {})).content[0].text)  # type: ignore[union-attr]

            async with anyio.create_task_group() as group:
                group.start_soon(b_holds)
                prompt = await a.get_prompt("x__summarize", {"topic": "A's plans"})
    answer = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert b_asked.kinds == [], "B was asked about A's prompt"
    assert answer.startswith("refused:") and "per_client" in answer, answer
    assert results["b"] == "held"


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of one POST's answer: a JSON body or an event stream."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()] if response.content else []
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]


async def test_a_calls_log_messages_reach_a_client_without_a_get_stream(tmp_path: Path, procs: list) -> None:
    """D5: a 2025-11-25 client that set a level and never opened the (optional) GET stream gets the log
    message its own call caused, on that call's stream, before the call's answer."""
    config = write_config(tmp_path, {"x": CROSSING}, {"data_dir": str(tmp_path / "hub")})
    url = start_hub_http(procs, config)
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with anyio.fail_after(60):
        async with httpx.AsyncClient(timeout=30) as http:
            opened = await http.post(url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "no-get-stream", "version": "1"}}})
            headers |= {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            await http.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            level = _messages(await http.post(url, headers=headers, json={
                "jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "info"}}))
            assert level[-1].get("result") == {}, level
            called = _messages(await http.post(url, headers=headers, json={
                "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x__note", "arguments": {"text": "mine"}}}))
    assert [m["params"]["data"] for m in called if m.get("method") == "notifications/message"] == ["note: mine"], called
    assert called[-1].get("id") == 3 and "result" in called[-1], called


async def test_a_calls_log_message_never_reaches_another_connection_of_the_same_principal(tmp_path: Path, procs: list) -> None:
    """Sibling of D1/D2 for log messages: auth off, A and B both listen; the line the server writes during
    A's call (nothing else in flight) is A's only — B got it before, being the same principal."""
    config = write_config(tmp_path, {"x": CROSSING}, {"data_dir": str(tmp_path / "hub")})
    url = start_hub_http(procs, config)
    a_heard, b_heard = Heard(), Heard()
    with anyio.fail_after(120):
        async with Client(streamable_http_client(url), mode="legacy", logging_callback=a_heard.on_log) as a, \
                Client(streamable_http_client(url), mode="legacy", logging_callback=b_heard.on_log) as b:
            await a.set_logging_level("debug")
            await b.set_logging_level("debug")
            await a.call_tool("x__note", {"text": "A's diary"})
            await a_heard.until(lambda: ("x/crossing", "note: A's diary") in a_heard.logs)
            await b.call_tool("x__note", {"text": "B's list"})  # B's own line reaches B, after A's
            await b_heard.until(lambda: ("x/crossing", "note: B's list") in b_heard.logs)
    assert ("x/crossing", "note: A's diary") not in b_heard.logs
    assert ("x/crossing", "note: B's list") not in a_heard.logs
