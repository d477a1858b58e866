"""Outside review interop16 #2: a server that asks `roots/list` outside any tool call — after
`initialized` and on `notifications/roots/list_changed`, as @modelcontextprotocol/server-filesystem
does — gets its client's roots through the hub. The hub remembered clients by the SDK's per-request
session, so behind the stdio front every such ask was refused, and over HTTP a re-ask failed "no channel".

Real processes: the hub (`mcp-hub serve`, stdio or HTTP), the roots-tracking fixture server as its stdio
child (`tests/fixtures/roots_tracking_server.py`), SDK clients declaring roots.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import FIXTURES, PY, ROOT, Proc, start_hub_http, write_config
from tests.relay_support import answer, eventually

pytestmark = pytest.mark.anyio

TRACKER = str(Path(FIXTURES) / "roots_tracking_server.py")


class Roots:
    """A client's roots, which a test may change."""

    def __init__(self, *uris: str) -> None:
        self.uris = list(uris)

    async def __call__(self, ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=uri) for uri in self.uris])


async def refused_at_init(hub: Proc) -> bool:
    """Whether the hub refused a server's `roots/list`: asked when no client was there to answer."""
    return any("relay kind=roots server=fs" in line and "outcome=denied" in line for line in list(hub.stderr_lines))


def tracker(session: str | None = None) -> dict[str, Any]:
    return {"command": PY, "args": [TRACKER], **({"session": session} if session else {})}


@asynccontextmanager
async def connected(target: Any, roots: Roots) -> AsyncIterator[Client]:
    async with Client(target, mode="legacy", list_roots_callback=roots) as client:
        yield client


async def has_roots(client: Client, uris: list[str]) -> bool:
    return answer(await client.call_tool("fs__allowed_dirs", {}))["roots"] == uris  # type: ignore[no-any-return]


async def test_behind_the_stdio_front_the_one_clients_roots_answer_at_init_and_after_a_change(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"fs": tracker()}, {"data_dir": str(tmp_path / "data")})
    hub = StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(config)],
                                env=dict(os.environ), cwd=str(ROOT))
    roots = Roots("file:///work/project")
    with anyio.fail_after(120):
        async with connected(hub, roots) as client:
            await eventually(lambda: has_roots(client, ["file:///work/project"]), within_s=30)
            roots.uris = ["file:///work/other"]
            await client.send_roots_list_changed()
            await eventually(lambda: has_roots(client, ["file:///work/other"]), within_s=30)
            assert answer(await client.call_tool("fs__allowed_dirs", {}))["lastError"] is None


@pytest.mark.parametrize("list_delay", ["0", "6"])
async def test_a_shared_server_that_asked_before_any_client_asks_again_when_one_with_roots_arrives(
        list_delay: str, tmp_path: Path, procs: list[Proc]) -> None:
    """With `list_delay`, the child's first tools/list is held back: it asked for roots right after its handshake,
    before any client and before the hub had its tools listed (so before it counted as connected); the client arrived
    in between, the hub's notice to the child failed ("down") and was dropped, and the child never asked again (a
    fresh-clone CI run met it behind the stdio front)."""
    config = write_config(tmp_path, {"fs": {**tracker("shared"), "env": {"ROOTS_TRACKER_LIST_DELAY": list_delay}}},
                          {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    hub = procs[-1]
    await eventually(lambda: refused_at_init(hub), within_s=60)
    with anyio.fail_after(120):
        async with connected(url, Roots("file:///a")) as client:
            await eventually(lambda: has_roots(client, ["file:///a"]), within_s=30)


HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sse_messages(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]


async def posted(http: httpx.AsyncClient, url: str, headers: dict[str, str], message: dict[str, Any]) -> dict[str, Any]:
    """POST one JSON-RPC message; its answer (JSON or the event stream's), or {} for a notification's 202."""
    response = await http.post(url, json=message, headers=headers)
    assert response.status_code in (200, 202), response.text
    if response.status_code == 202:
        return {}
    if response.headers["content-type"].startswith("text/event-stream"):
        return next(m for m in sse_messages(response.text.splitlines()) if m.get("id") == message["id"])
    return response.json()  # type: ignore[no-any-return]


async def opened(http: httpx.AsyncClient, url: str, capabilities: dict[str, Any]) -> dict[str, str]:
    """A raw 2025-11-25 Streamable HTTP session (initialized, no GET stream): its request headers."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities,
                       "clientInfo": {"name": "raw", "version": "1"}}}
    response = await http.post(url, json=init, headers=HEADERS)
    assert response.status_code == 200, response.text
    headers = {**HEADERS, "Mcp-Session-Id": response.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
    await posted(http, url, headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


async def allowed_dirs(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    called = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "fs__allowed_dirs", "arguments": {}}}
    return json.loads((await posted(http, url, headers, called))["result"]["content"][0]["text"])  # type: ignore[no-any-return]


async def test_a_streamable_http_client_is_asked_for_roots_once_its_get_stream_opens(
        tmp_path: Path, procs: list[Proc]) -> None:
    """A fresh-clone CI run: the hub told the waiting server to ask again at the client's `initialized`,
    before the client opened its GET stream; the ask went to the session's standalone stream, which the SDK
    drops while no GET stream is open — lost, and never made again. Now the client is asked once it is open."""
    config = write_config(tmp_path, {"fs": tracker("shared")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    hub = procs[-1]
    await eventually(lambda: refused_at_init(hub), within_s=60)
    async with httpx.AsyncClient(timeout=30) as http:
        reader = await opened(http, url, {})  # no roots: its calls tell no one and are never asked
        client = await opened(http, url, {"roots": {"listChanged": True}})
        with anyio.move_on_after(3):  # a server told too early asks into the void meanwhile (asks: 2)
            while (await allowed_dirs(http, url, reader))["asks"] < 2:
                await anyio.sleep(0.05)
        seen: list[str] = []
        with anyio.fail_after(20):
            async with http.stream("GET", url, headers={**client, "Accept": "text/event-stream"}) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():  # the server's ask, now that the client can hear it
                    seen.append(line)
                    if asked := [m for m in sse_messages(seen) if m.get("method") == "roots/list"]:
                        break
                answered = {"jsonrpc": "2.0", "id": asked[0]["id"], "result": {"roots": [{"uri": "file:///late"}]}}
                await posted(http, url, client, answered)

                async def has_late_roots() -> bool:
                    return (await allowed_dirs(http, url, reader))["roots"] == ["file:///late"]  # type: ignore[no-any-return]

                await eventually(has_late_roots, within_s=20)


async def test_a_per_client_sessions_re_ask_goes_to_its_own_client_only(tmp_path: Path, procs: list[Proc]) -> None:
    config = write_config(tmp_path, {"fs": tracker("per_client")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    roots_a, roots_b = Roots("file:///a"), Roots("file:///b")
    with anyio.fail_after(120):
        async with connected(url, roots_a) as a, connected(url, roots_b) as b:
            for client in (a, b):  # each opens its own session (a child of its own) of `fs`
                assert answer(await client.call_tool("fs__allowed_dirs", {}))["asks"] >= 1
            roots_a.uris = ["file:///a2"]
            await a.send_roots_list_changed()  # A's child asks again, outside any call: A answers
            await eventually(lambda: has_roots(a, ["file:///a2"]), within_s=30)
            seen_b = answer(await b.call_tool("fs__allowed_dirs", {}))["roots"]
            assert seen_b in (None, ["file:///b"])  # never A's
            await b.send_roots_list_changed()
            await eventually(lambda: has_roots(b, ["file:///b"]), within_s=30)


async def test_a_shared_servers_out_of_call_ask_with_several_clients_follows_the_last_caller_or_is_refused(
        tmp_path: Path, procs: list[Proc]) -> None:
    config = write_config(tmp_path, {"fs": tracker("shared")}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config)
    with anyio.fail_after(120):
        async with Client(url, mode="legacy") as reader, connected(url, Roots("file:///a")) as a:  # reader: no roots
            async def state() -> dict[str, Any]:
                return answer(await reader.call_tool("fs__allowed_dirs", {}))  # type: ignore[no-any-return]

            async def a_answered() -> bool:  # A was the one client with roots when the server asked
                return (await state())["roots"] == ["file:///a"]

            await eventually(a_answered, within_s=30)
            async with connected(url, Roots("file:///b")) as b:
                asks = (await state())["asks"]
                await a.send_roots_list_changed()  # two clients with roots, neither called `fs`: whose? refused

                async def refused() -> bool:
                    now = await state()
                    return now["asks"] > asks and "none has called" in (now["lastError"] or "")

                await eventually(refused, within_s=30)
                assert (await state())["roots"] == ["file:///a"]  # B's never sent
                await a.call_tool("fs__allowed_dirs", {})  # A is the last caller with roots now
                asks = (await state())["asks"]
                await a.send_roots_list_changed()

                async def asked_again() -> bool:
                    now = await state()
                    return now["asks"] > asks and now["lastError"] is None

                await eventually(asked_again, within_s=30)
                await b.send_roots_list_changed()  # fs's roots are A's: B's change does not concern it
                await a.send_roots_list_changed()  # a marker: had B's been passed on, fs would count one more ask
                after = asks + 2

                async def marker() -> bool:
                    return (await state())["asks"] >= after

                await eventually(marker, within_s=30)
                final = await state()
                assert final["asks"] == after and final["roots"] == ["file:///a"]
