"""A legacy SSE server that refuses a message POST (413 from a body limit, 503) ended the SDK's
writer for the rest of the session while its event stream stayed open: the refused call waited out its
deadline and every later call failed "Connection closed" until the breaker opened (outside review
engines16 #1). Now the refused call is answered at once from the status, and the session goes on
(`hub.downstream.watched.Refusals`)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import FIXTURES, PY, Proc, free_port, start_hub_http, wait_for_port, write_config, error_body

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_refused_post_fails_its_call_at_once_and_the_session_goes_on(tmp_path: Path, procs: list,
                                                                            session: str) -> None:
    port = free_port()
    procs.append(Proc([PY, str(FIXTURES / "refusing_sse_server.py"), str(port)]))
    wait_for_port(port)
    servers = {"web": {"url": f"http://127.0.0.1:{port}/sse", "transport": "sse", "session": session, "timeout_s": 20}}
    url = start_hub_http(procs, write_config(tmp_path, servers, {"data_dir": str(tmp_path / "data")}))
    async with Client(url, mode="legacy") as client:
        assert (await client.call_tool("web__echo", {"text": "before"})).structured_content == {"result": "before"}
        for marker, code in (("refuse-413", "upstream_error"), ("refuse-503", "unavailable"),
                             ("refuse-400", "upstream_error")):  # a JSON-RPC error with id null (recheck17 #2)
            started = anyio.current_time()
            with anyio.fail_after(15):  # well before the call's 20 s deadline
                refused = await client.call_tool("web__echo", {"text": marker})
            body = error_body(refused)
            assert refused.is_error and body.get("code") == code, body
            assert str(marker[-3:]) in body["message"] or "request refused" in body["message"], body
            assert anyio.current_time() - started < 15
        for n in range(6):  # more than the breaker's threshold
            assert (await client.call_tool("web__echo", {"text": f"after-{n}"})).structured_content == {"result": f"after-{n}"}
