"""A 2025-11-25 session's log level and resource subscriptions travel with it between replicas
(`hub.cluster.session_state`; outside review, cluster round 18 #6: behind a round-robin balancer
`logging/setLevel` landed on one replica and the GET stream on another, and a standard SDK client got
none of its calls' log lines). Two `mcp-hub serve` replicas sharing a session secret and a real Redis;
`fx` logs during its `logs` call (stdio), `s` sends a resource update when `touch`ed (in-process), `p`
is the same with a downstream session per client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PY
from tests.haproxy_cluster import sealed_replicas

pytestmark = [pytest.mark.slow]
FX = str(Path(__file__).parents[2] / "fixtures" / "relay_fx_server.py")
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}
NOTE = "mcphub://s/note://a"
LINES = {"log-debug", "log-info", "log-warning", "log-error"}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Replicas A and B (one config: Redis + a session secret, auth off), stopped before Redis."""
    servers = {"fx": {"command": PY, "args": [FX, "stdio"]},
               "s": {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy"},
               "p": {"module": "tests.fixtures.subscribing_server:server", "protocol": "legacy", "session": "per_client"}}
    with sealed_replicas(tmp_path, servers) as (urls, _, _):
        yield urls[0], urls[1]


def post(url: str, method: str, params: dict[str, Any] | None, session: str | None = None,
         request_id: int | None = 1) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """One request; its response and every JSON-RPC message it carried (an SSE answer may carry several)."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})}
    if request_id is not None:
        body["id"] = request_id
    response = httpx.post(url, json=body, headers={**HEADERS, **({"Mcp-Session-Id": session} if session else {})},
                          timeout=30)
    assert response.status_code < 300, (response.status_code, response.text[:300])
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    else:
        messages = [response.json()] if response.content else []
    return response, messages


def open_session(url: str) -> str:
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    response, _ = post(url, "initialize", init)
    session = response.headers["mcp-session-id"]
    post(url, "notifications/initialized", None, session, request_id=None)
    return session


class GetStream:
    """The session's GET stream on one replica, read in a thread."""

    def __init__(self, url: str, session: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self._context = self._client.stream("GET", url, headers={**HEADERS, "Mcp-Session-Id": session})
        response = self._context.__enter__()
        assert response.status_code == 200, response.status_code
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()

    def _read(self, response: httpx.Response) -> None:
        try:
            for line in response.iter_lines():
                if line.startswith("data:") and line[5:].strip():
                    with self._changed:
                        self.messages.append(json.loads(line[5:]))
                        self._changed.notify_all()
        except httpx.HTTPError:
            return

    def wait_for(self, method: str, timeout: float = 20) -> list[dict[str, Any]]:
        """Everything received until the first `method` (which must come within `timeout`)."""
        with self._changed:
            found = self._changed.wait_for(lambda: any(m.get("method") == method for m in self.messages), timeout)
            assert found, f"the GET stream got {[m.get('method') for m in self.messages]}, no {method}"
            return list(self.messages)

    def close(self) -> None:
        self._client.close()


def logged(messages: list[dict[str, Any]]) -> list[str]:
    return [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"]


def test_a_level_set_on_one_replica_holds_for_the_session_on_the_other(replicas: tuple[str, str]) -> None:
    url_a, url_b = replicas
    session = open_session(url_a)
    post(url_a, "logging/setLevel", {"level": "debug"}, session, request_id=2)
    stream = GetStream(url_b, session)  # the GET stream on the other replica, as a balancer may place it
    try:
        # B adopted the session with its level: its call's log lines come on the call's own stream.
        _, on_b = post(url_b, "tools/call", {"name": "fx__logs", "arguments": {}}, session, request_id=3)
        assert set(logged(on_b)) == LINES, on_b
        # A call on A: its lines on A's call stream, and not once more on the GET stream on B.
        post(url_a, "resources/subscribe", {"uri": NOTE}, session, request_id=4)
        _, on_a = post(url_a, "tools/call", {"name": "fx__logs", "arguments": {}}, session, request_id=5)
        assert set(logged(on_a)) == LINES, on_a
        post(url_a, "tools/call", {"name": "s__touch", "arguments": {"uri": "note://a"}}, session, request_id=6)
        before = stream.wait_for("notifications/resources/updated")  # published after A's log lines
        assert logged(before) == [], before
    finally:
        stream.close()


def test_a_subscription_made_on_one_replica_reaches_the_stream_on_the_other(replicas: tuple[str, str]) -> None:
    url_a, url_b = replicas
    session = open_session(url_a)
    post(url_a, "resources/subscribe", {"uri": NOTE}, session, request_id=2)
    stream = GetStream(url_b, session)
    try:
        # An update of A's server, relayed through Redis to the stream on B (A holds no stream for it).
        post(url_a, "tools/call", {"name": "s__touch", "arguments": {"uri": "note://a"}}, session, request_id=3)
        got = stream.wait_for("notifications/resources/updated")
        assert [m["params"]["uri"] for m in got if m.get("method") == "notifications/resources/updated"] == [NOTE]
        # B's own server was subscribed for the session too, and an unsubscribe on B ends it on A.
        _, watched = post(url_b, "tools/call", {"name": "s__subscribed", "arguments": {}}, session, request_id=4)
        assert "note://a" in json.dumps(watched[-1]["result"]), watched
        # A level set on B holds for the session's copy on A (told through Redis at once).
        post(url_b, "logging/setLevel", {"level": "error"}, session, request_id=5)
        for attempt in range(100):
            _, on_a = post(url_a, "tools/call", {"name": "fx__logs", "arguments": {}}, session, request_id=6 + attempt)
            if set(logged(on_a)) == {"log-error"}:
                break
        else:
            raise AssertionError("A never took the level set on B")
    finally:
        stream.close()


def test_a_per_client_sessions_update_reaches_its_clients_stream_on_the_other_replica(replicas: tuple[str, str]) -> None:
    url_a, url_b = replicas
    session = open_session(url_a)
    post(url_a, "resources/subscribe", {"uri": "mcphub://p/note://a"}, session, request_id=2)
    stream = GetStream(url_b, session)
    try:
        # The update of the client's own session on A is its own: relayed to its session's stream on B only.
        post(url_a, "tools/call", {"name": "p__touch", "arguments": {"uri": "note://a"}}, session, request_id=3)
        got = stream.wait_for("notifications/resources/updated")
        assert [m["params"]["uri"] for m in got if m.get("method") == "notifications/resources/updated"] == [
            "mcphub://p/note://a"]
    finally:
        stream.close()
