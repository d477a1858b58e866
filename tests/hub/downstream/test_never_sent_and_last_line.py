"""Outside review recheck21h #1 and #3.

#1: a call that never left the hub — an HTTP server refusing the connection, a stdio child whose stdin
was already closed — was answered as lost in flight: a write was told "outcome unknown, not
retryable, check first", though it certainly did not run. Told apart at the source now (`NotSent`, the
transport's not-sent answer): such a call is `unavailable`, retryable, `details.reason: "not_sent"`.
#3: a stdio child that wrote its whole answer without the final newline and exited was often told "lost
the connection": closing stdout on the loss of stdin (`lose_stdin`) raced the end of file that delivers
the last line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from hub.calls.errors import forward_error
from hub.config import parse_config
from hub.downstream.json_channel import JsonChannel
from hub.frontends.stdio.line_pipes import LineReader, cut_by_end
from hub.hub import Hub

pytestmark = pytest.mark.anyio


class OneShotServer:
    """A Streamable HTTP MCP server answering each request on its own connection (`connection: close`),
    so once it stops listening no pooled connection is left: the next request's connect is refused."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            lines = head.split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if not lines[0].startswith("POST"):
                await self._send(writer, "405 Method Not Allowed", b"")
                return
            message = json.loads(body)
            if "id" not in message:
                await self._send(writer, "202 Accepted", b"")
                return
            method, rid = message["method"], message["id"]
            result: Any = {}
            if method == "initialize":
                result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                          "serverInfo": {"name": "one", "version": "1"}}
            elif method == "tools/list":
                result = {"tools": [{"name": "pay", "inputSchema": {"type": "object"}}]}
            elif method == "tools/call":
                self.calls.append(message["params"]["name"])
                result = {"content": [{"type": "text", "text": "paid"}]}
            await self._send(writer, "200 OK", json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: str, body: bytes) -> None:
        writer.write(f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
                     "connection: close\r\n\r\n".encode() + body)
        await writer.drain()


@pytest.fixture
async def one_shot() -> AsyncIterator[tuple[str, OneShotServer, asyncio.Server]]:
    server = OneShotServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", server, listening
    finally:
        listening.close()


def assert_not_sent(body: dict[str, Any]) -> None:
    assert body["code"] == "unavailable" and body["retryable"] is True, body
    assert body["details"]["reason"] == "not_sent" and "outcome" not in body["details"], body
    assert "may have reached" not in body["message"] and "Check first" not in body["message"], body


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_write_whose_http_connection_is_refused_is_retryable_not_outcome_unknown(
        one_shot: tuple[str, OneShotServer, asyncio.Server], session: str) -> None:
    url, server, listening = one_shot
    config = {"hub": {"timeout_s": 10}, "mcpServers": {"s": {"url": url, "session": session}}}
    async with Hub(parse_config(config)) as hub:
        with anyio.fail_after(20):
            assert not (await hub.route_call("s__pay", {})).is_error
            listening.close()
            await listening.wait_closed()
            refused = await hub.route_call("s__pay", {"amount": 7})  # a write, no key: never sent
    assert refused.is_error and isinstance(refused.structured_content, dict), refused
    assert_not_sent(refused.structured_content)
    assert server.calls == ["pay"]


async def test_a_request_on_a_closed_channel_or_a_closed_pipe_is_not_sent() -> None:
    from hub.downstream.json_channel import NotSent  # noqa: PLC0415 — the test fails, not the module, without the fix

    channel = JsonChannel()
    with pytest.raises(NotSent):  # never bound, or closed: nothing can be written
        await channel.request("tools/call", {"name": "pay"}, lambda data, meta: None)
    written: list[bytes] = []

    async def closed_pipe(line: bytes) -> None:
        written.append(line)
        raise NotSent("the stdin of server 's' is closed")

    channel.bind(closed_pipe)
    with pytest.raises(NotSent) as raised:
        await channel.request("tools/call", {"name": "pay"}, lambda data, meta: None)
    assert len(written) == 1  # no notifications/cancelled for a request that never went out

    class Named:
        name = "s"

    error = await forward_error(raised.value, Named())  # type: ignore[arg-type]
    assert_not_sent(error.body.model_dump())
    assert "stdin of server 's' is closed" in error.body.message


async def test_a_write_to_a_stdio_child_whose_stdin_is_closed_is_not_sent(tmp_path: Path) -> None:
    """A child that closed its stdin and runs on: a call sent to it (before the hub ends the connection)
    finds the pipe closed, and is told it was never sent, not that its outcome is unknown."""
    from hub.downstream import stdio  # noqa: PLC0415
    from hub.downstream.json_channel import NotSent  # noqa: PLC0415 — the test fails, not the module, without the fix

    script = tmp_path / "closes_stdin.py"
    script.write_text("import os, sys, time\nos.close(0)\n"
                      "sys.stdout.write('{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":"
                      "{\"level\":\"info\",\"data\":\"closed\"}}\\n'); sys.stdout.flush()\ntime.sleep(30)\n")
    channel = JsonChannel()
    outcomes: list[type[BaseException]] = []
    with anyio.fail_after(15):
        async with stdio.stdio_child("s", sys.executable, [str(script)], channel=channel) as (read, write):
            await read.receive()  # its stdin is closed by now
            while not outcomes or outcomes[-1] is not NotSent:
                with anyio.move_on_after(1):
                    try:
                        await channel.request("tools/call", {"name": "pay"}, lambda data, meta: None)
                    except Exception as exc:  # noqa: BLE001 — the first write may meet EPIPE: lost, as it may be
                        outcomes.append(type(exc))
                await anyio.sleep(0)
            await write.aclose()  # as the SDK's session ends: the writer's loop ends
    assert outcomes[-1] is NotSent, outcomes


def test_a_pipe_closed_before_its_end_of_file_still_delivers_its_last_line() -> None:
    lines: list[bytes] = []
    ends: list[str | None] = []
    reader = LineReader(lines.append, ends.append)
    reader.data_received(b'{"jsonrpc":"2.0","id":"hub-1","result":{}}')  # whole, its newline never came
    reader.connection_lost(None)  # the hub closed the pipe first (its stdin was seen closed)
    assert lines == [b'{"jsonrpc":"2.0","id":"hub-1","result":{}}'] and cut_by_end(lines[0]), lines
    assert ends == [None]


NO_NEWLINE = """
import json, os, sys
for line in sys.stdin:
    m = json.loads(line); rid = m.get("id"); meth = m.get("method")
    if meth == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"protocolVersion": m["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "n", "version": "1"}}}), flush=True)
    elif meth == "tools/list":
        print(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{"name": "w_last",
              "inputSchema": {"type": "object"}}]}}), flush=True)
    elif meth == "tools/call":
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "done"}]}}))
        sys.stdout.flush(); os._exit(0)
    elif rid is not None:
        print(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}), flush=True)
"""


async def test_a_whole_last_answer_without_its_newline_is_the_answer_every_time(tmp_path: Path) -> None:
    script = tmp_path / "no_newline.py"
    script.write_text(NO_NEWLINE)
    config = {"hub": {"timeout_s": 10}, "mcpServers": {"n": {
        "command": sys.executable, "args": [str(script)], "restart": {"initial_backoff_s": 0.05, "max_backoff_s": 0.1}}}}
    answers: list[Any] = []
    async with Hub(parse_config(config)) as hub:
        downstream = hub.downstreams["n"]
        with anyio.fail_after(18):
            for attempt in range(8):
                while downstream.restarts < attempt or downstream.ready_now() is None:  # restarted after its exit
                    await anyio.sleep(0.02)
                result = await hub.route_call("n__w_last", {})
                answers.append(result.structured_content if result.is_error else result.content[0].text)
    assert answers == ["done"] * 8, answers


async def test_an_sdk_session_request_to_a_child_whose_stdin_is_closed_is_answered_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the JSON channel (a per-client session): the request the writer could not write is
    answered as never sent, so the SDK's caller is not told "connection closed"."""
    from mcp.shared.message import SessionMessage  # noqa: PLC0415
    from mcp_types import JSONRPCError, JSONRPCRequest  # noqa: PLC0415

    from hub.downstream import stdio  # noqa: PLC0415
    from hub.downstream.json_channel import not_sent_why  # noqa: PLC0415 — the test fails, not the module, without the fix

    script = tmp_path / "closes_stdin.py"
    script.write_text("import os, sys, time\nos.close(0)\n"
                      "sys.stdout.write('{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":"
                      "{\"level\":\"info\",\"data\":\"closed\"}}\\n'); sys.stdout.flush()\ntime.sleep(30)\n")
    monkeypatch.setattr(stdio, "STDIN_LOSS_DRAIN_S", 10.0, raising=False)  # its stdout stays read meanwhile
    answers: list[Any] = []
    with anyio.fail_after(15):
        async with stdio.stdio_child("s", sys.executable, [str(script)]) as (read, write):
            await read.receive()  # its stdin was closed before this line was written: the hub has seen it
            await write.send(SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=7, method="tools/call",
                                                           params={"name": "pay"})))
            async for message in read:
                answers.append(message.message if isinstance(message, SessionMessage) else message)
                break
            await write.aclose()
    assert answers and isinstance(answers[0], JSONRPCError) and answers[0].id == 7, answers
    assert not_sent_why(answers[0].error.data) is not None, answers
