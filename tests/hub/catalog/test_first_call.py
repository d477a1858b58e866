"""`mcp-hub serve` answers `initialize` at once; a call to a server that is still making its first
connection then waits for it instead of being told the tool does not exist, however long past
`hub.list_wait_s` the server takes (up to `hub.connect_timeout_s`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import echo_stdio, write_config, error_body

pytestmark = pytest.mark.anyio


async def test_first_call_to_a_server_still_starting_waits_for_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"slow": echo_stdio("--slow-start", "2")}, hub={"list_wait_s": 0.1})
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hub.cli", "serve", "--config", str(config)],
        env={**os.environ, "MCP_HUB_CACHE_DIR": str(tmp_path / "fresh-cache")},
    )
    async with Client(params) as client:
        result = await client.call_tool("slow__echo", {"text": "late but there"})
        assert not result.is_error and "late but there" in result.content[0].text
        unknown = await client.call_tool("nobody__nothing", {})  # no server is starting for it: unknown at once
        assert unknown.is_error and error_body(unknown)["code"] == "not_found"


async def test_a_tool_of_a_server_still_starting_or_down_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    """A name under the namespace of a server that is not ready gets `unavailable` naming the server
    and its state (retryable), not `not_found`: the tool may exist once the server connects."""
    servers = {"hang": echo_stdio("--hang-at-start"),
               "gone": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]},
               "ok": echo_stdio()}
    config = write_config(tmp_path, servers, hub={"list_wait_s": 0.1, "call_wait_s": 0.2, "connect_timeout_s": 60})
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hub.cli", "serve", "--config", str(config)],
        env={**os.environ, "MCP_HUB_CACHE_DIR": str(tmp_path / "fresh-cache")},
    )
    async with Client(params) as client:
        with anyio.fail_after(60):  # a state wait: `ok` connects; `hang` never does, `gone` keeps exiting
            while "ok__echo" not in {tool.name for tool in (await client.list_tools()).tools}:
                await anyio.sleep(0.05)
        assert not (await client.call_tool("ok__echo", {"text": "up"})).is_error
        for name, server in (("hang__echo", "hang"), ("gone__anything", "gone")):
            refused = await client.call_tool(name, {})
            body = refused.structured_content
            assert refused.is_error and body["code"] == "unavailable" and body["retryable"], body
            assert body["details"]["server"] == server and body["details"]["state"] != "ready"
            assert body.get("retry_after_s") is not None
        unknown = await client.call_tool("nobody__nothing", {})
        assert error_body(unknown)["code"] == "not_found"
