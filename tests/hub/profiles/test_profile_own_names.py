"""A server's own tool name on a short-name profile (outside review search15 #6).

`serve --profile desk` (search mode, `name_budget` 16: `desk__search_tickets` is listed under a hashed
short name) with a slow server outside the profile, so the hub is still starting when the session's
first call arrives. The own name `search_tickets` (what descriptions and MCP Apps say) must be taken
by a direct `tools/call` and by `call_tool` alike, before the session's first `tools/list` too; an own
name of a tool outside the profile stays unknown, answered as any unknown name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import PY, ROOT, echo_stdio, write_config, error_body
from tests.hub.profiles.test_profiles import PROFILES, SERVERS, env, outcome

pytestmark = pytest.mark.anyio


def params(tmp_path: Path) -> StdioServerParameters:
    path = write_config(tmp_path, {**SERVERS, "slow": echo_stdio("--name", "slow", "--slow-start", "2")})
    path.write_text(json.dumps({**json.loads(path.read_text()), "profiles": PROFILES}))
    return StdioServerParameters(command=PY, args=["-m", "hub.cli", "serve", "--config", str(path), "--profile", "desk",
                                                   "--log-level", "warning"], env=env(tmp_path), cwd=str(ROOT))


async def test_own_name_is_called_directly_before_the_first_list(tmp_path: Path) -> None:
    async with Client(params(tmp_path), mode="legacy") as client:
        direct = await client.call_tool("search_tickets", {"text": "printer"})  # the session's first request
        assert direct.is_error is False and direct.structured_content == {"ids": ["T-7"]}, direct


async def test_call_tool_takes_the_own_name_a_direct_call_takes(tmp_path: Path) -> None:
    async with Client(params(tmp_path), mode="legacy") as client:
        via = await client.call_tool("call_tool", {"name": "search_tickets", "arguments": {"text": "printer"}})
        assert via.is_error is False and via.structured_content == {"ids": ["T-7"]}, via
        listed = [t.name for t in (await client.list_tools()).tools]
        assert "search_tickets" not in listed and "desk__search_tickets" not in listed, "the profile lists short names"
        direct = await client.call_tool("search_tickets", {"text": "printer"})
        assert direct.structured_content == via.structured_content
        for name in ("book_room", "desk__search_tickets"):  # outside the profile; the hub-wide name
            refused = await client.call_tool("call_tool", {"name": name, "arguments": {}})
            unknown = await client.call_tool("call_tool", {"name": "no_such_tool", "arguments": {}})
            assert error_body(refused)["code"] == error_body(unknown)["code"] == "not_found"
            assert error_body(refused)["message"].replace(name, "X") == \
                error_body(unknown)["message"].replace("no_such_tool", "X")
            assert await outcome(client, name, {}) == await outcome(client, "no_such_tool", {})
