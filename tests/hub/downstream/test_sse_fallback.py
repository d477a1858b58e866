"""A server configured as Streamable HTTP that is a legacy HTTP+SSE one (outside review interop26 #3: VS Code
and Cursor write `"type": "http"` for both, and fall back to SSE themselves; through the hub such an entry
never connected and every call answered "down (Not Found)", retryable, for ever): the hub falls back to SSE
as the spec's backwards compatibility says, and a URL that is neither is a failure naming both fixes."""

from __future__ import annotations

import anyio
import pytest

from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import error_body, start_echo_http

pytestmark = pytest.mark.anyio


async def test_a_streamable_http_entry_for_a_legacy_sse_server_falls_back_to_sse(procs: list) -> None:
    url = start_echo_http(procs, "sse")
    config = parse_config({"mcpServers": {"ev": {"type": "http", "url": url}}})
    async with Hub(config) as hub:
        with anyio.fail_after(30):
            while hub.downstreams["ev"].state != "ready":
                await anyio.sleep(0.05)
        result = await hub.route_call("ev__echo", {"text": "over sse"})
        assert not result.is_error and result.structured_content == {"result": "over sse"}, result
        assert hub.downstreams["ev"].legacy_sse and not hub.downstreams["ev"].speaks_streamable_http


async def test_a_url_that_is_neither_is_refused_naming_the_path_and_the_sse_setting(procs: list) -> None:
    url = start_echo_http(procs, "http").removesuffix("/mcp") + "/nowhere"
    config = parse_config({"mcpServers": {"ev": {"type": "http", "url": url}}})
    async with Hub(config) as hub:
        with anyio.fail_after(30):
            await hub.downstreams["ev"].first_attempt.wait()
        body = error_body(await hub.route_call("ev__echo", {"text": "x"}))
    assert body["code"] == "unavailable" and body["retryable"] is False, body
    assert "/nowhere" in body["message"] and "\"transport\": \"sse\"" in body["message"] and "/mcp" in body["message"], body
