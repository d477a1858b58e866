"""Outside review faults19 #3 and #4: one HTTP response lost, or holding no answer, is one request's failure.

#3: behind the stdio front (the shared session), one Streamable HTTP response cut mid-body (or a
connection closed before the headers) ended the SDK's whole transport: the server was marked down,
every tool of it refused until a reconnect, the reconnect backoff doubling with each such fault.
#4: a complete `application/json` body that holds no answer to the call's request (an answer to
another id, a notification) was waited out to the call's deadline and reported as a `timeout`.

A raw HTTP/1.1 server in the test's own loop, so a response can be cut exactly where wanted."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from hub.config import parse_config
from hub.hub import Hub

pytestmark = pytest.mark.anyio
TOOLS = ("echo", "cut", "reset", "wrong_id", "note_only")


class RawServer:
    """A Streamable HTTP MCP server written by hand: JSON answers only, no session id."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                verb = lines[0].split(" ", 1)[0]
                headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._answer(verb, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: str, body: bytes = b"", kind: str = "application/json") -> None:
        writer.write(f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    async def _answer(self, verb: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if verb != "POST":
            await self._send(writer, "405 Method Not Allowed")
            return True
        message = json.loads(body)
        if "id" not in message:
            await self._send(writer, "202 Accepted")
            return True
        method, rid = message["method"], message["id"]
        if method == "initialize":
            result: Any = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                           "serverInfo": {"name": "raw", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": name, "inputSchema": {"type": "object"}} for name in TOOLS]}
        elif method == "tools/call":
            name = message["params"]["name"]
            self.calls[name] += 1
            ok = json.dumps({"jsonrpc": "2.0", "id": rid,
                             "result": {"content": [{"type": "text", "text": f"{name} ok"}]}}).encode()
            if name == "cut":  # headers and a part of the body, then the connection closes
                writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(ok)}\r\n\r\n"
                             .encode() + ok[:10])
                await writer.drain()
                return False
            if name == "reset":  # closed before the headers
                return False
            if name == "wrong_id":
                await self._send(writer, "200 OK", ok.replace(json.dumps(rid).encode(), b"999999", 1))
                return True
            if name == "note_only":
                note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hello"}}
                await self._send(writer, "200 OK", json.dumps(note).encode())
                return True
            await self._send(writer, "200 OK", ok)
            return True
        else:
            result = {}
        await self._send(writer, "200 OK", json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode())
        return True


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[str, RawServer]]:
    server = RawServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", server
    finally:
        listening.close()


def hub_over(url: str, **server: Any) -> Hub:
    return Hub(parse_config({"hub": {"timeout_s": 20}, "mcpServers": {"s": {"url": url, **server}}}))


async def call(hub: Hub, tool: str) -> Any:
    with anyio.fail_after(30):
        return await hub.route_call(f"s__{tool}", {})


@pytest.mark.parametrize("tool", ["cut", "reset"])
async def test_a_lost_response_fails_its_call_alone_and_the_shared_session_stays_up(
        raw_server: tuple[str, RawServer], tool: str) -> None:
    url, server = raw_server
    async with hub_over(url) as hub:
        downstream = hub.downstreams["s"]
        assert not (await call(hub, "echo")).is_error
        for _ in range(3):
            lost = await call(hub, tool)
            assert downstream.state == "ready", downstream.error  # not marked down: no reconnect, no backoff
            after = await call(hub, "echo")  # another tool of the same server, right after
            assert not after.is_error, after
            body = lost.structured_content
            assert lost.is_error and isinstance(body, dict), lost
            assert body["code"] == "unavailable", body
            assert (body.get("details") or {}).get("reason") != "down", body
            assert "server 's'" in body["message"] and "bug" not in body["message"], body
        assert downstream.restarts == 0
    assert server.calls[tool] == 3  # a write: never sent twice


@pytest.mark.parametrize(("tool", "held"), [("wrong_id", "an answer to another request (id 999999)"),
                                            ("note_only", "a notification")])
async def test_a_json_body_holding_no_answer_fails_its_call_at_once(
        raw_server: tuple[str, RawServer], tool: str, held: str) -> None:
    url, _ = raw_server
    async with hub_over(url) as hub:
        notes: list[Any] = []

        async def on_log(_downstream: Any, params: Any, *_owner: Any) -> None:
            notes.append(params)

        hub.downstreams["s"].on_log = on_log
        started = time.monotonic()
        result = await call(hub, tool)
        took = time.monotonic() - started
        assert not (await call(hub, "echo")).is_error
    body = result.structured_content
    assert result.is_error and isinstance(body, dict), result
    assert took < 5, took  # not at the 20 s deadline
    assert body["code"] == "upstream_error", body
    assert body["details"]["reason"] == "no_jsonrpc_answer" and body["details"]["http_status"] == 200, body
    assert held in body["message"] and "timeout_s" not in body["message"], body
    if tool == "note_only":  # what the body held is still passed on
        assert [getattr(note, "data", None) for note in notes] == ["hello"], notes
