"""Outside review (interop round 8): a legacy-SSE server restarted on its port was never reached again.

The SSE transport's event stream is its only way back (every answer comes on it): when it ends, the
session is gone. The hub took the stream's end for a passing "transport error" and kept the dead
session (the shared one and each client's own), so every call failed until two health checks had
failed (a minute by default), and the failures opened the breaker for every client meanwhile. Now the
end of the stream is the loss of the connection: the shared session reconnects (within its backoff),
a client's own session is closed and the next call opens a new one."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import ECHO, PY, Proc, free_port, start_hub_http, wait_for_port, write_config

pytestmark = pytest.mark.anyio


async def echoed(client: Client, text: str) -> bool:
    result = await client.call_tool("web__echo", {"text": text})
    return not result.is_error and result.structured_content == {"result": text}


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_restarted_sse_server_is_reached_again_without_waiting_for_health_checks(
        tmp_path: Path, procs: list, session: str) -> None:
    port = free_port()
    first = Proc([PY, ECHO, "sse", str(port), "--name", "web"])
    procs.append(first)
    wait_for_port(port)
    servers = {"web": {"url": f"http://127.0.0.1:{port}/sse", "transport": "sse", "session": session,
                       "restart": {"initial_backoff_s": 0.2, "max_backoff_s": 1.0}}}  # health checks: every 30 s
    url = start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))
    with anyio.fail_after(90):
        async with Client(url, mode="legacy") as client:
            assert await echoed(client, "before")
            first.stop()
            procs.append(Proc([PY, ECHO, "sse", str(port), "--name", "web"]))
            wait_for_port(port)
            with anyio.fail_after(20):  # well inside the two health checks (60 s) the hub waited for before
                attempt = 0
                while not await echoed(client, f"after-{attempt}"):
                    attempt += 1
                    await anyio.sleep(0.2)
        async with Client(url, mode="legacy") as newcomer:  # the breaker did not lock anyone out
            assert await echoed(newcomer, "new")
