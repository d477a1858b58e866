"""Issue #19: a `tools/call` of a tool the hub does not expose to the caller is answered as the
servers behind it answer one — an `isError` result with code `not_found` (`hub.unknown_tool`) — and
the same whether the tool does not exist, is filtered out, or lies outside the caller's scopes.

Clients are SDK clients connected in memory to `build_server(hub)` (the HTTP/SDK face), in both eras.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import error_body
from mcp import Client

from hub.audit.log import query
from hub.config import parse_config
from hub.hub import Hub
from hub.frontends.server import build_server

pytestmark = pytest.mark.anyio

INPROC = "tests.fixtures.inproc_server:server"


def hub_of(tmp_path: Any, **hub: Any) -> Hub:
    servers = {"e": {"module": INPROC, "tools": {"deny": ["divide"]}}, "w": {"module": INPROC}}
    return Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data"), **hub}, "mcpServers": servers}))


def assert_not_found(result: Any, name: str) -> None:
    assert result.is_error is True
    body = result.structured_content
    assert body["code"] == "not_found" and body["retryable"] is False and body["details"] == {"tool": name}
    assert repr(name) in body["message"] and "tools/list" in body["message"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_unknown_filtered_and_hidden_tools_get_the_same_not_found_result(tmp_path: Any, mode: str) -> None:
    async with hub_of(tmp_path, auth={"stdio_scopes": ["e:write"]}) as hub:
        async with Client(build_server(hub), mode=mode) as client:
            answers = {}
            # made up, denied by config, out of scope, and a server's own name only a denied or out-of-scope tool has
            for name in ("e__nope", "e__divide", "w__multiply", "divide"):
                result = await client.call_tool(name, {"a": 1, "b": 2})
                assert_not_found(result, name)
                answers[name] = error_body(result)["message"].replace(repr(name), "<name>")
            assert len(set(answers.values())) == 1, answers  # no existence leak
            assert (await client.call_tool("e__multiply", {"a": 2, "b": 3})).structured_content == {"result": 6}
            # a server's own name reaches the one tool of that name this caller may use (w's is out of scope)
            assert (await client.call_tool("multiply", {"a": 2, "b": 4})).structured_content == {"result": 8}
    denied = {r["tool"] for r in query(tmp_path / "data", principal="local") if r["outcome"] == "denied"}
    assert {"w__multiply", "e__divide"} <= denied  # still audited as refused


async def test_a_huge_unknown_name_is_not_echoed_whole(tmp_path: Any) -> None:
    async with hub_of(tmp_path) as hub:
        async with Client(build_server(hub), mode="legacy") as client:
            result = await client.call_tool("x" * 10_000, {})
    assert result.is_error and len(error_body(result)["message"]) < 400


async def test_in_search_mode_the_answer_points_at_search_tools(tmp_path: Any) -> None:
    async with hub_of(tmp_path, tools_mode="search") as hub:
        async with Client(build_server(hub), mode="legacy") as client:
            result = await client.call_tool("e__nope", {})
    assert result.is_error and error_body(result)["code"] == "not_found"
    assert "search_tools" in error_body(result)["message"]
