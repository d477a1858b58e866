"""The children a `per_client` stdio server lends to a 2026-07-28 caller's next request
(`hub.downstream.sessions`, lending) end with their server: one that exits is never lent again, and a
Restart of the server ends every one of them (re-check of round 12: a crashed child was lent, dead, to
every later request of its caller; a restarted server's old children kept serving).

The hub runs in this process; the client is the SDK's, in memory, speaking 2026-07-28; the server is
`tests/fixtures/echo_server.py` over stdio, each child marked so this test can count them."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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
