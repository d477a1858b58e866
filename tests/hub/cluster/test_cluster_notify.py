"""Server→client messages across two hub replicas through a real Redis (issue 21, `hub.cluster.notify`).

Two `mcp-hub serve` processes share one config with `hub.cluster.redis_url` (each has its own data dir
and its own stdio echo server). A 2025-11-25 client whose GET stream is on replica B is told of a tool
list change caused by replica A's downstream (`e__grow` called on A)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import echo_stdio
from tests.haproxy_cluster import redis_replicas

pytestmark = [pytest.mark.slow]
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[str]]:
    with redis_replicas(tmp_path, {"e": echo_stdio()}) as urls:
        yield urls


def rpc(http: httpx.Client, url: str, method: str, params: dict | None = None, session: str | None = None,
        request_id: int | None = 1) -> httpx.Response:
    body: dict = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if request_id is not None:
        body["id"] = request_id
    headers = {**ACCEPT, **({"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"} if session else {})}
    response = http.post(url, json=body, headers=headers)
    assert response.status_code < 300, response.text
    return response


def open_session(http: httpx.Client, url: str) -> str:
    """initialize + initialized + one tools/list (the hub registers the session for list changes)."""
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    session = rpc(http, url, "initialize", init).headers["mcp-session-id"]
    rpc(http, url, "notifications/initialized", session=session, request_id=None)
    rpc(http, url, "tools/list", session=session, request_id=2)
    return session


def test_list_change_on_replica_a_reaches_a_stream_on_replica_b(replicas: list[str]) -> None:
    url_a, url_b = replicas
    seen: list[str] = []
    got = threading.Event()
    with httpx.Client(timeout=30) as http:
        session_b = open_session(http, url_b)
        with http.stream("GET", url_b, headers={"Accept": "text/event-stream", "Mcp-Session-Id": session_b,
                                                "Mcp-Protocol-Version": "2025-11-25"}) as stream:
            assert stream.status_code == 200  # B's GET stream is open before A changes anything

            def read() -> None:
                for line in stream.iter_lines():
                    if line.startswith("data:"):
                        method = json.loads(line[5:]).get("method", "")
                        seen.append(method)
                        if method == "notifications/tools/list_changed":
                            got.set()
                            return

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            with httpx.Client(timeout=30) as other:
                session_a = open_session(other, url_a)
                grown = rpc(other, url_a, "tools/call", {"name": "e__grow", "arguments": {}}, session=session_a, request_id=3)
                assert "grown" in grown.text
            assert got.wait(15), f"replica B's stream got {seen}, not tools list_changed"
    health = httpx.get(url_b.replace("/mcp", "/healthz"), timeout=5).json()
    assert health["notifications"]["state"] == "ok" and health["notifications"]["delivered"] >= 1
