"""`mcp-hub serve` answers `initialize` at once; a call to a server that is still making its first
connection then waits for it instead of being told the tool does not exist, however long past
`hub.list_wait_s` the server takes (up to `hub.connect_timeout_s`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import echo_stdio, write_config

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
        with pytest.raises(MCPError):  # a name no server is still starting for is unknown at once
            await client.call_tool("nobody__nothing", {})
