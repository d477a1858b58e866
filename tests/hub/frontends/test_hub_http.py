"""The hub over Streamable HTTP (both eras) and legacy SSE, with HTTP, SSE and in-process downstreams."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import FIXTURES, PY, echo_stdio, start_echo_http, start_hub_http, write_config

pytestmark = pytest.mark.anyio


async def test_http_hub_serves_both_eras_over_http_and_sse_downstreams(tmp_path: Path, procs: list) -> None:
    http_url = start_echo_http(procs, "http", "--name", "web")
    sse_url = start_echo_http(procs, "sse", "--name", "old")
    config = write_config(
        tmp_path,
        {
            "web": {"url": http_url},
            "old": {"url": sse_url, "transport": "sse"},
            "local": echo_stdio(),
            "down": {"url": "http://127.0.0.1:9/mcp"},
        },
    )
    url = start_hub_http(procs, config)

    for mode, era in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
        async with Client(url, mode=mode) as client:
            assert client.protocol_version == era
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"web__add", "old__add", "local__add"} <= names
            assert not any(n.startswith("down__") for n in names)
            for ns in ("web", "old", "local"):
                result = await client.call_tool(f"{ns}__add", {"a": 1, "b": 2})
                assert result.structured_content == {"total": 3}, (mode, ns)
            text = (await client.read_resource("mcphub://old/fixture://readme")).contents[0].text
            assert text == "readme of old"

    response = httpx.get(url.replace("/mcp", "/healthz"))
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "degraded" and health["degraded"] == ["down"]
    assert health["servers"]["down"]["health"] == "down" and health["servers"]["web"]["health"] == "connected"
    assert health["servers"]["web"]["calls"] == 2 and health["servers"]["web"]["p95_ms"] > 0


async def test_legacy_sse_upstream(tmp_path: Path, procs: list) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    url = start_hub_http(procs, config, transport="sse")
    async with Client(sse_client(url), mode="legacy") as client:
        assert (await client.call_tool("e__echo", {"text": "via sse"})).structured_content == {"result": "via sse"}


async def test_http_endpoint_also_offers_legacy_sse(tmp_path: Path, procs: list) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    url = start_hub_http(procs, config)
    async with Client(sse_client(url.replace("/mcp", "/sse")), mode="legacy") as client:
        assert (await client.call_tool("e__add", {"a": 2, "b": 2})).structured_content == {"total": 4}


async def test_a_big_result_over_legacy_sse_arrives_on_the_get_stream_whole(tmp_path: Path, procs: list) -> None:
    """Over legacy SSE the answer goes out on the GET stream, not on the POST that made the call: a
    big result's text, held for whichever writer writes it, is spliced there too (review round 2:
    it came out empty while held per request). Raw HTTP: the SDK's SSE client refuses events over 1 MiB."""
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()})).replace("/mcp", "/sse")
    base = url.removesuffix("/sse")
    big = "x\u00e9\"" * (1 << 19)  # a 2.6 MB argument (the front takes bodies up to 4 MiB), a 5 MB answer
    send_event, events = anyio.create_memory_object_stream[dict](100)

    async def read_stream(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", url) as response:
            name, data = None, []
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    await send_event.send({"event": name, "data": "\n".join(data)})
                    name, data = None, []

    async def answer(ident: int) -> dict:
        while True:
            event = await events.receive()
            message = json.loads(event["data"])
            if message.get("id") == ident:
                return message

    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=300)) as client, anyio.create_task_group() as tg:
        tg.start_soon(read_stream, client)
        endpoint = base + (await events.receive())["data"]
        await client.post(endpoint, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        await answer(1)
        await client.post(endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        await client.post(endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                          "params": {"name": "e__echo", "arguments": {"text": big}}})
        result = (await answer(2))["result"]
        assert result["structuredContent"] == {"result": big} and result["content"][0]["text"] == big
        tg.cancel_scope.cancel()


def test_foreign_origin_and_host_are_refused(tmp_path: Path, procs: list) -> None:
    config = write_config(tmp_path, {"e": echo_stdio()})
    url = start_hub_http(procs, config)
    body = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    evil = httpx.post(url, json=body, headers={**headers, "Origin": "http://evil.example"})
    assert evil.status_code == 403
    rebound = httpx.post(url, json=body, headers={**headers, "Host": "evil.example"})
    assert rebound.status_code in (403, 421)
    ok = httpx.post(url, json=body, headers={**headers, "Origin": url.rsplit("/", 1)[0]})
    assert ok.status_code == 200


async def test_in_process_and_protocol_eras_of_downstreams() -> None:
    config = parse_config(
        {
            "mcpServers": {
                "math": {"module": "tests.fixtures.inproc_server:server"},
                "made": {"module": "tests.fixtures.inproc_server:make_server"},
                "modern": echo_stdio(protocol="2026-07-28"),
                "handshake": echo_stdio("--name", "hs", protocol="legacy"),
                "both": echo_stdio("--name", "both"),  # `auto`: the handshake first (hub.downstream.era)
                "only2026": {"command": PY, "args": [str(FIXTURES / "modern_only.py"), "--name", "m26"]},
                "nomod": {"module": "tests.fixtures.no_such_module:server"},
            }
        }
    )
    async with Hub(config) as hub:
        assert hub.downstreams["modern"].protocol_version == "2026-07-28"
        # Pinned to 2026-07-28, its tools are listed (the SDK's own pin would adopt no capabilities).
        assert (await hub.route_call("modern__add", {"a": 1, "b": 2})).structured_content == {"total": 3}
        assert hub.downstreams["handshake"].protocol_version == "2025-11-25"
        assert hub.downstreams["both"].protocol_version == "2025-11-25"
        # A server refusing the handshake is connected again at once with the 2026-07-28 probe.
        assert hub.downstreams["only2026"].protocol_version == "2026-07-28"
        assert (await hub.route_call("only2026__add", {"a": 2, "b": 3})).structured_content == {"total": 5}
        assert hub.downstreams["math"].protocol_version == "2026-07-28"  # in-process: the probe
        assert hub.downstreams["nomod"].state == "down" and "no_such_module" in (hub.downstreams["nomod"].error or "")
        result = await hub.route_call("math__multiply", {"a": 6, "b": 7})
        assert result.structured_content == {"result": 42.0}
        assert (await hub.route_call("made__made", {})).content[0].text == "made"
        assert (await hub.route_call("handshake__add", {"a": 1, "b": 1})).structured_content == {"total": 2}


async def test_exposed_name_collision_is_a_config_error() -> None:
    from hub.config import ConfigError

    config = parse_config(
        {"mcpServers": {"a": echo_stdio("--extra-tool", "b__add", namespace=""), "b": echo_stdio("--name", "b")}}
    )
    with pytest.raises(ConfigError) as caught:
        async with Hub(config):
            pass
    assert "both expose tool 'b__add'" in str(caught.value)


async def test_closing_the_http_client_cancels_the_downstream_call(tmp_path: Path, procs: list) -> None:
    import anyio

    marker = tmp_path / "cancelled"
    config = write_config(tmp_path, {"e": echo_stdio(env={"FIXTURE_CANCEL_MARKER": str(marker)})})
    url = start_hub_http(procs, config)
    async with Client(url, mode="legacy") as client:
        await client.call_tool("e__echo", {"text": "up"})  # the server is connected: the slow call goes out at once
        with anyio.move_on_after(0.8):
            await client.call_tool("e__slow", {"seconds": 20})
    with anyio.fail_after(10):
        while not marker.exists():
            await anyio.sleep(0.05)
    # The child's stderr reached the hub's log, one line, tagged with the server name.
    assert any("hub.downstream.e: stderr: fixture echo starting" in line for line in procs[-1].stderr_lines)


async def test_accepted_connections_do_not_wait_on_nagle() -> None:
    """The hub's own listening socket must let asyncio set TCP_NODELAY on each connection (a missing
    IPPROTO_TCP once cost every 2026-era HTTP call ~45 ms of Nagle + delayed ACK)."""
    import asyncio
    import socket

    from hub.frontends.http.transports import bind_listener

    listener = bind_listener("127.0.0.1", 0)
    seen: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    assert seen and seen[0] != 0


def test_a_get_stream_answers_its_head_before_any_event(tmp_path: Path, procs: list) -> None:
    """A client opening the GET /mcp stream gets its status and headers at once, not with the first
    event (the big-result splice held every response's head until a body part, which an idle
    stream may never send)."""
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio()}))
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    with httpx.Client(timeout=httpx.Timeout(30, read=10)) as client:
        opened = client.post(url, json=hello, headers=headers)
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={**headers, **session})
        with client.stream("GET", url, headers={"Accept": "text/event-stream", **session}) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
