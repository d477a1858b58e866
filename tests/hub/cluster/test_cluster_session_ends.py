"""Which ends of a portable 2025-11-25 session are the session's, for every replica, and which are only one
replica's copy (outside review, cluster round 18 #1, #7, #8, #9). Two real hub processes, a real Redis."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_client

from tests.conftest import Proc, wait_for_port
from tests.haproxy_cluster import Redis, need_binary
from tests.hub.auth.test_security import create_key, hub_cli
from tests.hub.cluster.test_cluster_sessions import (
    HEADERS,
    SECRET_A,
    SECRET_B,
    delete,
    initialize,
    result_of,
    rpc,
    two_replicas,
    until_gone,
)

pytestmark = [pytest.mark.slow]

SWEEPS_S = 5.0
"""Two of a replica's ended-session sweeps (`ENDED_SWEEP_S`, 2 s) and a margin: how long an end shared in
Redis takes at most to reach a replica holding the session."""


def open_sessions(url: str, admin: str) -> int:
    health = httpx.get(url.replace("/mcp", "/healthz"), headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    return health.json()["sessions"]["streamable_http"]


def ended_keys(url: str) -> set[str]:
    return {key.decode() for key in redis_client.Redis.from_url(url).keys("mcp-hub:ended:*")}


def ended_key(session: str) -> str:
    return "mcp-hub:ended:" + hashlib.sha256(session.encode()).hexdigest()


def test_a_replicas_idle_or_evicted_copy_does_not_end_the_session_the_client_uses_elsewhere(
    tmp_path: Path, procs: list
) -> None:
    """#1: A's copy of a session idled out (or was evicted under A's per-principal cap) while its client
    used it on B; A shared that as the session's end, and B's sweep then killed the live session (404)."""
    redis = Redis()
    try:
        url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B], redis.url,
                                              http={"session_idle_timeout_s": 2, "max_sessions_per_principal": 2})
        carol, admin = create_key(data_dir, "carol", "e:write"), create_key(data_dir, "ops", "hub:admin")
        evicted, idled = initialize(url_a, carol), initialize(url_a, carol)
        for session in (evicted, idled):
            assert result_of(rpc(url_b, "tools/list", {}, carol, session))["tools"]  # B adopts both
        third = initialize(url_a, carol)  # A is at carol's cap: its copy of `evicted` (least recent, idle) goes
        assert rpc(url_a, "tools/list", {}, carol, third).status_code == 200
        # The client goes on using both sessions on B while A's copies go (evicted, then idle).
        deadline = time.monotonic() + 30
        released_at = None
        while released_at is None or time.monotonic() < released_at + SWEEPS_S:
            for session in (evicted, idled):
                assert rpc(url_b, "tools/list", {}, carol, session).status_code == 200, session
            if released_at is None and open_sessions(url_a, admin) == 0:
                released_at = time.monotonic()  # every copy on A is gone: evicted or idle
            assert time.monotonic() < deadline, "A's copies never idled out"
            time.sleep(0.3)
        assert not ended_keys(redis.url), "a copy released by one replica was shared as the session's end"
        # A released its copies, not the sessions: it adopts them again.
        for session in (evicted, idled, third):
            assert result_of(rpc(url_a, "tools/list", {}, carol, session))["tools"]
        # The session's own end is shared: its client's DELETE, its API key revoked.
        assert delete(url_b, carol, evicted) == 200
        until_gone(url_a, carol, evicted)
        stream = threading.Thread(target=get_stream, args=(url_b, carol, idled, None, 60), daemon=True)
        stream.start()  # an open GET stream keeps B's copy held (not idle) until the key's end closes it
        deadline = time.monotonic() + 30
        while open_sessions(url_b, admin) == 0 or rpc(url_b, "tools/list", {}, carol, idled).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        key_id = next(line.split()[0] for line in hub_cli(data_dir, "keys", "list").stdout.splitlines()
                      if "carol" in line)
        assert hub_cli(data_dir, "keys", "revoke", key_id).returncode == 0
        stream.join(30)  # B's credential watch ends the session (every key_cache_s) ...
        assert not stream.is_alive(), "a revoked key's session kept its stream"
        deadline = time.monotonic() + 15  # ... for every replica: shared once B has ended it (after its stream closed)
        while ended_key(idled) not in ended_keys(redis.url):
            assert time.monotonic() < deadline, "a revoked key's session end was never shared"
            time.sleep(0.1)
    finally:
        redis.stop()


def restart(redis: Redis) -> None:
    """Start `redis` again on its port (empty: no persistence)."""
    redis.proc = Proc([need_binary("redis-server", "redis-server"), "--port", str(redis.port), "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no"])
    wait_for_port(redis.port)


def test_a_session_deleted_while_redis_was_down_ends_everywhere_once_redis_is_back(
    tmp_path: Path, procs: list
) -> None:
    """#9: the end of a session DELETEd during a Redis blip was dropped, never written once Redis answered:
    the other replica served the session until `session_max_age_s`."""
    redis = Redis()
    try:
        url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B], redis.url)
        carol = create_key(data_dir, "carol", "e:write")
        session = initialize(url_a, carol)
        assert result_of(rpc(url_b, "tools/list", {}, carol, session))["tools"]  # B holds a copy
        redis.stop()
        assert delete(url_a, carol, session) == 200
        assert rpc(url_a, "tools/list", {}, carol, session).status_code == 404
        restart(redis)
        until_gone(url_b, carol, session)  # A writes the end once Redis answers; B's sweep finds it
        assert ended_key(session) in ended_keys(redis.url)
    finally:
        redis.stop()


def get_stream(url: str, token: str, session: str, last: str | None,
               read_s: float = 1.5) -> tuple[int, str, bytes, bool]:
    """Status, content type, body of a GET stream, and whether it was still open after `read_s`."""
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-11-25",
               "Mcp-Session-Id": session, **({"Last-Event-ID": last} if last is not None else {})}
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(30, read=read_s)) as response:
        try:
            body, live = response.read(), False
        except httpx.ReadTimeout:
            body, live = b"", True
        return response.status_code, response.headers.get("content-type", ""), body, live


def test_a_resume_on_a_replica_not_holding_the_session_is_gone_or_a_fresh_stream(tmp_path: Path, procs: list) -> None:
    """#7: a `Last-Event-ID` resume on a replica that did not hold the session yet (the one that ran the
    call died) was an empty 200 stream: the SDK adopted the session and replayed from an empty store."""
    url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B])
    carol, bob = create_key(data_dir, "carol", "e:write"), create_key(data_dir, "bob", "e:write")
    calls, streams = initialize(url_a, carol), initialize(url_a, carol)
    status, kind, body, _ = get_stream(url_b, carol, calls, "r3")
    assert status == 410, (status, kind, body)
    assert "this hub replica never held" in httpx.Response(410, content=body).json()["error"]["message"]
    assert get_stream(url_b, bob, calls, "r3")[0] == 404  # another caller learns nothing of the session
    status, kind, body, live = get_stream(url_b, carol, streams, "g3")
    assert (status, kind.split(";")[0], live) == (200, "text/event-stream", True), (status, kind, body)
    assert result_of(rpc(url_b, "tools/list", {}, carol, streams))["tools"]  # adopted with the fresh stream
    assert delete(url_b, carol, streams) == 200
    assert get_stream(url_b, carol, streams, "g3")[0] == 404  # ended: neither a fresh stream nor 410


def initialize_with(url: str, token: str, params: dict[str, Any]) -> httpx.Response:
    headers = {**HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-11-25"}
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params},
                      headers=headers, timeout=30)


def test_a_big_client_icon_keeps_the_session_portable_and_unsealable_params_are_refused_saying_so(
    tmp_path: Path, procs: list
) -> None:
    """#8: initialize params over ~3 KB (a clientInfo icon as a `data:` URI) silently gave the session a
    random id, which every other replica answered 404."""
    url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B])
    carol = create_key(data_dir, "carol", "e:write")
    icon = {"src": "data:image/png;base64," + "A" * 6000, "mimeType": "image/png"}
    params = {"protocolVersion": "2025-11-25", "capabilities": {"roots": {"listChanged": True}},
              "clientInfo": {"name": "t", "version": "1", "icons": [icon], "description": "d" * 2000}}
    opened = initialize_with(url_a, carol, params)
    assert result_of(opened)["protocolVersion"] == "2025-11-25"
    session = opened.headers["mcp-session-id"]
    assert session.startswith("s1.") and len(session) < 1024, len(session)
    assert rpc(url_a, "notifications/initialized", None, carol, session, request_id=None).status_code == 202
    assert result_of(rpc(url_b, "tools/list", {}, carol, session))["tools"]  # continued on B
    huge = {**params, "capabilities": {"experimental": {"x": {"blob": "B" * 5000}}}}
    refused = initialize_with(url_a, carol, huge)
    assert refused.status_code == 400 and "mcp-session-id" not in refused.headers
    error = refused.json()["error"]
    assert refused.json()["id"] == 1 and error["code"] == -32602
    assert "capabilities take" in error["message"] and "Declare fewer" in error["message"], error
