"""Issue #18, item 7: on a 2025-11-25 Streamable HTTP session a disconnect is not a cancel (as the
spec says); only `notifications/cancelled` cancels the downstream call. Raw HTTP, a real hub process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import echo_stdio, start_hub_http, write_config

pytestmark = pytest.mark.anyio

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def open_session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    response = await client.post(url, json=init, headers=ACCEPT)
    assert response.status_code == 200, response.text
    headers = {**ACCEPT, "Mcp-Session-Id": response.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
    await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


def slow_call(ident: int, seconds: float) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call",
            "params": {"name": "e__slow", "arguments": {"seconds": seconds, "steps": 4}}}


async def server_stats(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    health = await client.get(url.replace("/mcp", "/healthz"))
    return health.json()["servers"]["e"]  # type: ignore[no-any-return]


async def wait_for_calls(client: httpx.AsyncClient, url: str, count: int) -> dict[str, Any]:
    """The hub's stats for `e` once `count` calls to it have ended (answered, failed or cancelled)."""
    with anyio.fail_after(30):
        while (stats := await server_stats(client, url))["calls"] < count:

            await anyio.sleep(0.05)
    return stats


async def test_closing_the_response_stream_does_not_cancel_but_cancelled_does(tmp_path: Path, procs: list) -> None:
    marker = tmp_path / "cancelled"
    url = start_hub_http(procs, write_config(tmp_path, {"e": echo_stdio(env={"FIXTURE_CANCEL_MARKER": str(marker)})}))
    async with httpx.AsyncClient(timeout=30) as client:
        headers = await open_session(client, url)
        with anyio.fail_after(30):  # `serve` listens before its servers are up
            while (await server_stats(client, url))["state"] != "ready":
                await anyio.sleep(0.05)

        # The client goes away mid-call: it closes the stream that would carry the answer.
        async with client.stream("POST", url, json=slow_call(2, seconds=1.0), headers=headers) as response:
            assert response.status_code == 200
        stats = await wait_for_calls(client, url, 1)
        assert stats["failures"] == 0, "the call ran to its end"
        assert not marker.exists(), "the downstream call was not cancelled"

        # notifications/cancelled is what cancels (here the answer stream stays open meanwhile).
        async with anyio.create_task_group() as tg:

            async def call_and_read() -> None:
                async with client.stream("POST", url, json=slow_call(3, seconds=20), headers=headers) as streamed:
                    async for _ in streamed.aiter_bytes():
                        pass

            tg.start_soon(call_and_read)
            with anyio.fail_after(30):
                while (await server_stats(client, url))["in_flight"] == 0:
                    await anyio.sleep(0.05)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3, "reason": "t"}}
            await client.post(url, json=cancel, headers=headers)
            with anyio.fail_after(30):
                while not marker.exists():
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
