"""A `per_client` stdio server's own sessions (children) end with their server, and come back: one
lent to a 2026-07-28 caller's next request (`hub.downstream.sessions`, lending) that exits is never lent
again; a Restart ends every one of them (re-check of round 12: a crashed child was lent, dead, to every
later request of its caller; a restarted server's old children kept serving); after it, a call goes to
a new child while one still runs on the old, and a client's resource subscriptions are renewed on its
new session (re-check of round 13: the old child served on, then "lost the connection"; the
subscriptions were recorded as held, and nothing reached the client any more).

The hub runs in this process; the client is the SDK's, in memory, speaking 2026-07-28; the server is
`tests/fixtures/echo_server.py` over stdio, each child marked so this test can count them."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from hub.config import parse_config
from hub.frontends.server import build_server
from hub.hub import Hub
from tests.conftest import FIXTURES, ROOT, processes_with

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def lending_hub(tmp_path: Path) -> AsyncIterator[tuple[Hub, Client, str]]:
    marker = f"--lent-{uuid.uuid4().hex}"
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"e": {
        "command": sys.executable, "args": [str(FIXTURES / "echo_server.py"), marker], "env": {"PYTHONPATH": str(ROOT)},
        "session": "per_client", "protocol": "legacy"}}})
    async with Hub(config) as hub, Client(build_server(hub), mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        yield hub, client, marker


async def echo(client: Client) -> bool:
    result = await client.call_tool("e__echo", {"text": "hi"})
    return not result.is_error and result.content[0].text == "hi"  # type: ignore[union-attr]


async def test_a_lent_child_that_exits_is_never_lent_again(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with lending_hub(tmp_path) as (_hub, client, marker):
            assert await echo(client) and await echo(client)  # one child, lent to the second request
            crashed = await client.call_tool("e__crash", {})
            assert crashed.is_error
            while not await echo(client):  # waiting for the state "a new child serves": never, before
                await anyio.sleep(0.1)
            assert await echo(client)


async def test_a_restart_ends_the_children_lent_to_callers(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with lending_hub(tmp_path) as (hub, client, marker):
            assert await echo(client)
            await hub.await_first_listing()
            shared = hub.downstreams["e"]
            before = set(processes_with(marker))
            assert len(before) == 2  # the shared (catalog) session's child and the one lent to this caller
            assert shared.restart("restarted by the test")
            while set(processes_with(marker)) & before:  # waiting for the state "every old child is gone"
                await anyio.sleep(0.1)
            while not await echo(client):
                await anyio.sleep(0.1)
            assert not set(processes_with(marker)) & before


async def test_after_a_restart_new_calls_get_a_new_child_while_one_runs_on_the_old(tmp_path: Path) -> None:
    marker = f"--moved-{uuid.uuid4().hex}"
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"e": {
        "command": sys.executable, "args": [str(FIXTURES / "echo_server.py"), marker], "env": {"PYTHONPATH": str(ROOT)},
        "session": "per_client", "protocol": "legacy"}}})
    with anyio.fail_after(90):
        async with Hub(config) as hub, Client(build_server(hub), mode="legacy") as client:
            assert await echo(client)
            before = set(processes_with(marker))
            shared = hub.downstreams["e"]
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "e__slow", {"seconds": 3})
                while shared.stats.in_flight == 0:  # waiting for the state "the long call runs on the old child"
                    await anyio.sleep(0.02)
                assert shared.restart("restarted by the test")
                while not await echo(client):
                    await anyio.sleep(0.1)
                assert set(processes_with(marker)) - before  # served by a new child, not the old one


@pytest.mark.parametrize("ending", ["restart", "crash"])
async def test_a_clients_subscriptions_are_renewed_on_its_new_session(tmp_path: Path, ending: str) -> None:
    """After a Restart (re-check of round 13) or its child's crash (round 14) the client's own session
    is new, and holds the client's subscriptions again."""
    marker = f"--subscribing-{uuid.uuid4().hex}"
    config = parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": {"n": {
        "command": sys.executable, "args": [str(FIXTURES / "subscribing_server.py"), marker],
        "env": {"PYTHONPATH": str(ROOT)}, "session": "per_client", "protocol": "legacy"}}})

    async def watched(client: Client) -> Any:
        result = await client.call_tool("n__subscribed", {})
        return None if result.is_error else result.structured_content or result.content[0].text  # type: ignore[union-attr]

    with anyio.fail_after(90):
        async with Hub(config) as hub, Client(build_server(hub), mode="legacy") as client:
            await hub.await_first_listing()
            shared_child = set(processes_with(marker))
            await client.subscribe_resource("mcphub://n/note://a")
            subscribed = await watched(client)
            assert "note://a" in str(subscribed)
            if ending == "restart":
                assert hub.downstreams["n"].restart("restarted by the test")
            else:
                [own_child] = set(processes_with(marker)) - shared_child
                os.kill(own_child, signal.SIGKILL)
            while await watched(client) != subscribed:  # waiting for the state "renewed on the new child"
                await anyio.sleep(0.1)
