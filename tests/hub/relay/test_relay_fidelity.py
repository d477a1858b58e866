"""Issue #19 item 8: what a downstream answers passes through the hub as it was sent — list result
`_meta`, reserved result `_meta` (all but the hop keys), no `isError: false` the server never
sent, integer progress as integers — over stdio, Streamable HTTP and legacy SSE downstreams.

The downstream is `tests/fixtures/meta_server.py` as a real subprocess; calls go through
`Hub.route_call(wire=True)` (what the hub's MCP server sends on) and lists through an SDK client
connected in memory to `build_server(hub)`.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from hub.frontends.server import build_server
from hub.wire import result_json
from tests.conftest import PY, FIXTURES, free_port, wait_for_port, Proc

pytestmark = pytest.mark.anyio

META = str(FIXTURES / "meta_server.py")
LIST_META = {"example.com/listed-by": "meta-fixture", "io.modelcontextprotocol/ui": {"version": 1}}


@pytest.fixture(params=["stdio", "http", "sse"])
def downstream(request: pytest.FixtureRequest, procs: list[Proc]) -> dict[str, Any]:
    """The fixture's config entry over each downstream transport."""
    if request.param == "stdio":
        return {"command": PY, "args": [META]}
    port = free_port()
    procs.append(Proc([PY, META, request.param, str(port)]))
    wait_for_port(port)
    if request.param == "http":
        return {"url": f"http://127.0.0.1:{port}/mcp"}
    return {"url": f"http://127.0.0.1:{port}/sse", "transport": "sse"}


def hub_of(entry: dict[str, Any]) -> Hub:
    return Hub(parse_config({"mcpServers": {"m": entry}}))


async def test_a_result_keeps_the_fields_the_server_sent_and_nothing_more(downstream: dict[str, Any]) -> None:
    async with hub_of(downstream) as hub:
        plain = result_json(await hub.route_call("m__plain", {}, wire=True))
        assert "isError" not in plain, "the hub added an isError the server never sent"
        assert plain["content"] == [{"type": "text", "text": "plain"}]

        stamped = result_json(await hub.route_call("m__stamped", {}, wire=True))
        meta = stamped["_meta"]
        assert meta["example.com/trace"] == "t-1"
        assert meta["io.modelcontextprotocol/ui"] == {"resourceUri": "ui://meta/view"}  # reserved, not a hop key: kept
        assert "io.modelcontextprotocol/serverInfo" not in meta  # the downstream hop's stamp: dropped


async def test_integer_progress_reaches_the_caller_as_integers(downstream: dict[str, Any]) -> None:
    seen: list[tuple[Any, Any]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total))

    async with hub_of(downstream) as hub:
        await hub.route_call("m__count", {}, progress, wire=True)
    assert seen == [(1, 2), (2, 2)]
    assert all(type(value) is int and type(total) is int for value, total in seen), seen


async def test_list_results_carry_the_servers_list_meta(downstream: dict[str, Any]) -> None:
    async with hub_of(downstream) as hub, Client(build_server(hub), mode="legacy") as client:
        assert (await client.list_tools()).meta == LIST_META
        assert (await client.list_resources()).meta == LIST_META
        assert (await client.list_prompts()).meta == LIST_META
