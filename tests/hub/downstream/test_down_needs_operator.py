"""A server down for a reason only the hub's operator can fix — it refuses the credentials configured
for it, its command or working directory does not exist — is refused as not retryable, naming who
must act (outside review newuser19 #6: "calling again will not help" came with `retryable: true`
and a `retry_after_s`); one down for a passing reason keeps its retryable refusal."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from hub.config import parse_config
from hub.hub import Hub

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def refusing_http() -> AsyncIterator[str]:
    """A loopback HTTP server answering 401 to every request."""

    async def answer(stream: Any) -> None:
        async with stream:
            try:
                await stream.receive(65536)
                await stream.send(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n"
                                  b"Connection: close\r\n\r\n")
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer)
        yield f"http://127.0.0.1:{port}/mcp"
        group.cancel_scope.cancel()


async def refusal(hub: Hub, tool: str, server: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while hub.downstreams[server].state == "starting":
            await anyio.sleep(0.02)  # waiting for the state "first attempt made"
        result = await hub.route_call(tool, {})
    assert result.is_error and isinstance(result.structured_content, dict), result
    return result.structured_content


async def test_a_server_refusing_the_hubs_credentials_or_a_missing_command_is_not_retryable(tmp_path: Any) -> None:
    async with refusing_http() as url:
        servers = {"h": {"url": url, "headers": {"Authorization": "Bearer wrong-token-1234"}},
                   "c": {"command": str(tmp_path / "no-such-server")},
                   "w": {"command": sys.executable, "args": ["-c", "pass"], "cwd": str(tmp_path / "gone")}}
        async with Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": servers})) as hub:
            for server in servers:
                body = await refusal(hub, f"{server}__anything", server)
                assert body["code"] == "unavailable" and body["retryable"] is False, (server, body)
                assert body["details"]["needs"] == "operator" and "operator" in body["message"], (server, body)
                assert "retry_after_s" not in body and "wrong-token-1234" not in str(body), (server, body)


async def test_a_server_down_for_a_passing_reason_stays_retryable(tmp_path: Any) -> None:
    servers = {"x": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}}
    async with Hub(parse_config({"hub": {"data_dir": str(tmp_path / "data")}, "mcpServers": servers})) as hub:
        body = await refusal(hub, "x__anything", "x")
    assert body["code"] == "unavailable" and body["retryable"] is True and "needs" not in body["details"], body


async def test_a_listed_tool_of_such_a_server_is_refused_the_same_way() -> None:
    """A tool still listed (remembered from the start before) whose server is now down for good reason."""
    from types import SimpleNamespace

    from hub.calls.errors import forward_error
    from hub.downstream.connection import DownstreamUnavailable

    for needs_operator, retryable in ((True, False), (False, True)):
        downstream = SimpleNamespace(name="s", needs_operator=needs_operator, retry_after_s=lambda: 0.5)
        error = await forward_error(DownstreamUnavailable("server 's' is down (HTTP 401)"), downstream)  # type: ignore[arg-type]
        assert error.body.retryable is retryable and ("operator" in error.body.message) is needs_operator, error.body
