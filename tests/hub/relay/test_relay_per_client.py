"""Issue #19, per-client sessions everywhere: for a `per_client` server, resource subscriptions,
`logging/setLevel`, `tasks/*` and `notifications/tasks/status` use the CALLER's own downstream
session, and what one client's session sends reaches only that client; an upstream client that
disconnects closes its downstream sessions at once.

The downstream is a real Streamable HTTP server keeping subscriptions, log level and tasks per
session (`tests/fixtures/session_relay_server.py`); the hub runs as `mcp-hub serve`; the clients are
the SDK's, two at a time, each with its own session to the hub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

import sys
import uuid

import mcp_types as types

from tests.conftest import FIXTURES, ROOT, Proc, processes_with, start_hub_http, write_config
from tests.relay_support import (Asked, Heard, StatusWatcher, answer, create_key, eventually, open_sessions, raw,
                                 start_relay_server)

pytestmark = pytest.mark.anyio

URI = "mcphub://st/note://a"


def hub_with(tmp_path: Path, procs: list[Proc], transport: str = "http") -> tuple[str, str]:
    """(hub URL, downstream URL): the per-session server aggregated as namespace `st` (per_client: HTTP)."""
    downstream = start_relay_server(procs)
    config = write_config(tmp_path, {"st": {"url": downstream, "protocol": "legacy"}}, {"data_dir": str(tmp_path / "data")})
    return start_hub_http(procs, config, transport), downstream


def client(url: str, heard: Heard) -> Client:
    return Client(url, mode="legacy", message_handler=heard.on_message, logging_callback=heard.on_log,
                  extensions=[StatusWatcher(heard)])


@asynccontextmanager
async def two_clients(tmp_path: Path, procs: list) -> AsyncIterator[tuple[Client, Heard, Client, Heard]]:
    url, _ = hub_with(tmp_path, procs)
    heard_a, heard_b = Heard(), Heard()
    with anyio.fail_after(120):
        async with client(url, heard_a) as a, client(url, heard_b) as b:
            yield a, heard_a, b, heard_b


async def test_subscriptions_are_held_on_the_callers_own_session(tmp_path: Path, procs: list) -> None:
    async with two_clients(tmp_path, procs) as (a, heard_a, b, heard_b):
        await a.subscribe_resource(URI)
        await b.subscribe_resource(URI)
        assert answer(await a.call_tool("st__touch", {"x": "a"})) is True  # A's session holds A's subscription
        await heard_a.until(lambda: heard_a.updated == [URI])
        assert answer(await b.call_tool("st__touch", {"x": "a"})) is True
        await heard_b.until(lambda: heard_b.updated == [URI])
        assert heard_a.updated == [URI]  # B's update never reached A (notifications to one client are in order)
        await a.unsubscribe_resource(URI)
        assert answer(await a.call_tool("st__touch", {"x": "a"})) is False  # unsubscribed on A's own session


async def test_set_level_reaches_the_callers_own_session_and_its_logs_only_that_client(tmp_path: Path, procs: list) -> None:
    async with two_clients(tmp_path, procs) as (a, heard_a, b, heard_b):
        await a.set_logging_level("info")
        await b.set_logging_level("info")
        assert answer(await a.call_tool("st__say", {"text": "from A"})) is True  # A's own session has A's level
        await heard_a.until(lambda: heard_a.logs == [("st/fixture", "from A")])
        assert answer(await b.call_tool("st__say", {"text": "from B"})) is True
        await heard_b.until(lambda: heard_b.logs == [("st/fixture", "from B")])
        assert heard_a.logs == [("st/fixture", "from A")]


async def test_tasks_live_on_the_creators_session_and_their_status_reaches_only_it(tmp_path: Path, procs: list) -> None:
    async with two_clients(tmp_path, procs) as (a, heard_a, b, heard_b):
        created = (await raw(a, "tools/call", {"name": "st__job", "arguments": {}, "task": {"ttl": 60_000}}))["task"]
        exposed = created["taskId"]
        server_id = exposed.removeprefix("st:")
        assert exposed.startswith("st:") and answer(await a.call_tool("st__my_tasks", {})) == [server_id]
        assert answer(await b.call_tool("st__my_tasks", {})) == []
        assert (await raw(a, "tasks/get", {"taskId": exposed}))["status"] == "working"
        assert [t["taskId"] for t in (await raw(a, "tasks/list", {}))["tasks"]] == [exposed]
        with pytest.raises(MCPError):
            await raw(b, "tasks/get", {"taskId": exposed})  # not B's task

        # notifications/tasks/status: to the owner, with the id it knows; never to another client.
        assert answer(await a.call_tool("st__finish", {"task": server_id})) == "finished"
        await heard_a.until(lambda: heard_a.status == [(exposed, "completed")])
        done = await raw(a, "tasks/result", {"taskId": exposed})
        assert done["content"][0]["text"] == f"{server_id} done"
        await b.subscribe_resource(URI)  # a last message to B: had A's status been sent to it, it came first
        await b.call_tool("st__touch", {"x": "a"})
        await heard_b.until(lambda: heard_b.updated == [URI])
        assert heard_b.status == []


async def test_a_roots_change_reaches_the_clients_own_session(tmp_path: Path, procs: list) -> None:
    async with two_clients(tmp_path, procs) as (a, _, b, _):
        assert answer(await a.call_tool("st__roots_changes", {})) == 0  # A's own session is open now
        assert answer(await b.call_tool("st__roots_changes", {})) == 0
        await a.send_roots_list_changed()

        async def told_a() -> bool:
            return answer(await a.call_tool("st__roots_changes", {})) == 1  # type: ignore[no-any-return]

        await eventually(told_a)
        assert answer(await b.call_tool("st__roots_changes", {})) == 0  # not B's session


async def test_a_legacy_sse_client_that_disconnects_closes_its_downstream_session_at_once(tmp_path: Path, procs: list) -> None:
    url, downstream = hub_with(tmp_path, procs)
    sse_url = url.removesuffix("/mcp") + "/sse"
    with anyio.fail_after(120):
        async with Client(sse_client(sse_url), mode="legacy") as a:
            await a.call_tool("st__my_tasks", {})
            assert await open_sessions(downstream) == 2  # the hub's shared (catalog) session + A's own

        async def closed() -> bool:
            return await open_sessions(downstream) == 1

        await eventually(closed)


async def test_a_stdio_server_that_asks_its_client_gets_a_session_per_client_from_then_on(tmp_path: Path, procs: list) -> None:
    """A stdio server left to its `session` default is shared until it sends a server→client request;
    from then on each HTTP client gets a child of its own, so per-session state stops leaking."""
    child = {"command": sys.executable, "args": [str(FIXTURES / "session_relay_server.py"), "stdio"],
             "env": {"PYTHONPATH": str(ROOT)}}
    config = write_config(tmp_path, {"st": child}, {"data_dir": str(tmp_path / "data")})
    url = start_hub_http(procs, config, "http")
    heard_a, heard_b = Heard(), Heard()
    with anyio.fail_after(120):
        async with Client(url, mode="legacy", sampling_callback=_sampled, elicitation_callback=_elicited,
                          list_roots_callback=_roots, message_handler=heard_a.on_message) as a, \
                client(url, heard_b) as b:
            said, action, _ = answer(await a.call_tool("st__ask", {}))  # on the shared child: it asks A
            assert (said, action) == ("A", "accept")
            await a.subscribe_resource(URI)  # now on A's own child
            assert answer(await a.call_tool("st__touch", {"x": "a"})) is True
            assert answer(await b.call_tool("st__touch", {"x": "a"})) is False  # B's own child: no A state


async def test_a_2026_07_28_callers_requests_share_one_child_of_a_per_client_stdio_server(tmp_path: Path, procs: list) -> None:
    """A 2026-07-28 request has no session beyond itself; a stdio server's session is a child process
    (~0.5 s to start). The child a caller's request used is lent to that caller's next request (it
    was a child per call, ~600 ms a call), never to another caller; its questions reach the request
    that holds it."""
    marker = f"--lend-{uuid.uuid4().hex}"
    child = {"command": sys.executable, "args": [str(FIXTURES / "session_relay_server.py"), "stdio", marker],
             "env": {"PYTHONPATH": str(ROOT)}, "session": "per_client"}
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, {"st": child}, {"data_dir": str(data_dir), "auth": {"enabled": True}})
    keys = {name: create_key(data_dir, name, "st:write") for name in ("alice", "bob")}
    url = start_hub_http(procs, config, "http")

    def modern(name: str) -> Client:
        asked = Asked(name)
        transport = streamable_http_client(url, http_client=create_mcp_http_client(
            headers={"Authorization": f"Bearer {keys[name]}"}))
        return Client(transport, mode="auto", sampling_callback=asked.sampling, elicitation_callback=asked.elicitation,
                      list_roots_callback=asked.roots)

    def children() -> set[int]:
        return set(processes_with(marker))

    with anyio.fail_after(120):
        async with modern("alice") as alice, modern("bob") as bob:
            assert alice.protocol_version == "2026-07-28"
            assert answer(await alice.call_tool("st__ask", {}))[0] == "I am alice"
            after_first = children()
            assert len(after_first) == 2  # the hub's shared (catalog) session and alice's, kept for her
            for _ in range(3):
                assert answer(await alice.call_tool("st__ask", {}))[0] == "I am alice"
                assert children() == after_first  # no child per call
            assert answer(await bob.call_tool("st__ask", {}))[0] == "I am bob"
            assert len(children() - after_first) == 1  # bob never gets alice's child
            assert answer(await alice.call_tool("st__ask", {}))[0] == "I am alice"


async def _sampled(ctx: object, params: object) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="A"), model="m")


async def _elicited(ctx: object, params: object) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"pick": "x"})


async def _roots(ctx: object) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///a")])
