"""Portable 2025-11-25 sessions (issue 21): a session opened on one replica continues on another
that shares `hub.cluster.session_secrets`; an id replayed by another principal, altered, or sealed
with an unknown secret is refused like an unknown one (404). Two real hub processes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cluster.sealing import SessionSealer, SessionState
from tests.conftest import echo_stdio, start_hub_http, write_config
from tests.hub.test_hygiene import wait_ready
from tests.haproxy_cluster import Redis
from tests.hub.auth.test_security import create_key

SECRET_A, SECRET_B = "a" * 40, "b" * 40
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def rpc(url: str, method: str, params: dict[str, Any] | None, token: str, session: str | None = None,
        request_id: int | None = 1) -> httpx.Response:
    headers = {**HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-11-25"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})}
    if request_id is not None:
        body["id"] = request_id
    return httpx.post(url, json=body, headers=headers, timeout=30)


def result_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        message = json.loads([d for d in data if d][-1])
    else:
        message = response.json()
    assert "result" in message, message
    return message["result"]


def initialize(url: str, token: str) -> str:
    params = {"protocolVersion": "2025-11-25", "capabilities": {"roots": {"listChanged": True}},
              "clientInfo": {"name": "t", "version": "1"}}
    response = rpc(url, "initialize", params, token)
    result_of(response)
    session = response.headers["mcp-session-id"]
    assert rpc(url, "notifications/initialized", None, token, session, request_id=None).status_code == 202
    return session


def two_replicas(tmp_path: Path, procs: list, secrets: list[str] | None, redis_url: str | None = None,
                 **more: Any) -> tuple[str, str, Path]:
    data_dir = tmp_path / "data"
    urls = []
    for name, first in (("a", SECRET_A), ("b", SECRET_B)):
        folder = tmp_path / name
        folder.mkdir()
        cluster = {"session_secrets": [first, *[s for s in secrets if s != first]]} if secrets is not None else {}
        if redis_url is not None:
            cluster["redis_url"] = redis_url
        hub = {"auth": {"enabled": True}, "data_dir": str(data_dir), **({"cluster": cluster} if cluster else {}), **more}
        urls.append(start_hub_http(procs, write_config(folder, {"e": echo_stdio()}, hub=hub)))
    for url in urls:
        wait_ready(url)
    return urls[0], urls[1], data_dir


def test_session_opened_on_one_replica_continues_on_the_other_and_only_for_its_principal(
    tmp_path: Path, procs: list
) -> None:
    # Each replica seals with its own first secret and opens with both (a rotation in progress).
    url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B])
    carol, bob = create_key(data_dir, "carol", "e:write"), create_key(data_dir, "bob", "e:write")
    session = initialize(url_a, carol)
    assert session.startswith("s1.")
    tools = result_of(rpc(url_b, "tools/list", {}, carol, session))["tools"]
    assert "e__add" in {t["name"] for t in tools}
    call = result_of(rpc(url_b, "tools/call", {"name": "e__add", "arguments": {"a": 2, "b": 3}}, carol, session, 2))
    assert call["structuredContent"] == {"total": 5}
    assert result_of(rpc(url_a, "tools/call", {"name": "e__add", "arguments": {"a": 1, "b": 1}}, carol, session, 3))
    # Opened on B, continued on A: both directions.
    other = initialize(url_b, carol)
    assert result_of(rpc(url_a, "tools/list", {}, carol, other))["tools"]
    # Replayed by another principal: refused as if unknown, on the replica holding it and elsewhere.
    for url in (url_a, url_b):
        assert rpc(url, "tools/list", {}, bob, session).status_code == 404
    fresh = initialize(url_a, carol)  # never used on B, so B would have to adopt it
    assert rpc(url_b, "tools/list", {}, bob, fresh).status_code == 404
    assert result_of(rpc(url_b, "tools/list", {}, carol, fresh))["tools"]  # and still works for carol
    # Forged or altered ids are unknown ids.
    tampered = fresh[:-2] + ("A" if fresh[-2] != "A" else "B") + fresh[-1]
    for forged in (tampered, "s1." + "A" * 80, "not-a-session"):
        assert rpc(url_b, "tools/list", {}, carol, forged).status_code == 404


def test_without_shared_secrets_a_session_stays_on_its_replica(tmp_path: Path, procs: list) -> None:
    url_a, url_b, data_dir = two_replicas(tmp_path, procs, None)
    carol = create_key(data_dir, "carol", "e:write")
    session = initialize(url_a, carol)
    assert rpc(url_b, "tools/list", {}, carol, session).status_code == 404
    assert result_of(rpc(url_a, "tools/list", {}, carol, session))["tools"]


def delete(url: str, token: str, session: str) -> int:
    headers = {**HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": session}
    return httpx.delete(url, headers=headers, timeout=30).status_code


def until_gone(url: str, token: str, session: str) -> None:
    """Wait (bounded) until `url` answers 404 for `session`: a replica holding it looks every ENDED_SWEEP_S."""
    deadline = time.monotonic() + 30
    while (status := rpc(url, "tools/list", {}, token, session).status_code) != 404:
        assert status == 200 and time.monotonic() < deadline, status
        time.sleep(0.2)


def test_a_deleted_session_ends_on_every_replica(tmp_path: Path, procs: list) -> None:
    """Outside review (cluster round 7): after a DELETE on A, both replicas went on serving the session
    — any replica adopted a sealed id it did not hold, the one that had just ended it too."""
    redis = Redis()
    try:
        url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B], redis.url)
        carol = create_key(data_dir, "carol", "e:write")
        held_by_both, held_by_a = initialize(url_a, carol), initialize(url_a, carol)
        assert result_of(rpc(url_b, "tools/list", {}, carol, held_by_both))["tools"]  # B adopts it
        assert delete(url_a, carol, held_by_both) == 200
        assert rpc(url_a, "tools/list", {}, carol, held_by_both).status_code == 404  # at once on A
        until_gone(url_b, carol, held_by_both)  # B held it: ended by its sweep
        assert delete(url_b, carol, held_by_a) == 200  # ended by B, which never held it
        for url in (url_b, url_a):
            until_gone(url, carol, held_by_a)
        assert result_of(rpc(url_b, "tools/list", {}, carol, initialize(url_a, carol)))["tools"]  # others go on
        # Redis loses its records (a restart without persistence, a failover): the ends hold on the replicas
        # that saw them (outside review, cluster round 12: B adopted the DELETEd id again, 200).
        import redis as redis_client

        redis_client.Redis.from_url(redis.url).flushall()
        for url in (url_a, url_b):
            for ended in (held_by_both, held_by_a):
                assert rpc(url, "tools/list", {}, carol, ended).status_code == 404, (url, ended)
    finally:
        redis.stop()


def test_without_redis_a_deleted_session_ends_where_it_ended_and_an_idle_copy_is_adopted_again(
    tmp_path: Path, procs: list
) -> None:
    """An idle expiry releases a replica's copy, not the session (outside review, cluster round 18 #1: its
    client may be using it on another replica): the next request adopts it again."""
    url_a, url_b, data_dir = two_replicas(tmp_path, procs, [SECRET_A, SECRET_B],
                                          http={"session_idle_timeout_s": 1})
    carol = create_key(data_dir, "carol", "e:write")
    session = initialize(url_a, carol)
    assert delete(url_a, carol, session) == 200
    assert rpc(url_a, "tools/list", {}, carol, session).status_code == 404
    idle = initialize(url_b, carol)
    admin = {"Authorization": f"Bearer {create_key(data_dir, 'ops', 'hub:admin')}"}
    deadline = time.monotonic() + 30  # its idle expiry on B (asking would keep it alive: watch B's open sessions)
    while httpx.get(url_b.replace("/mcp", "/healthz"), headers=admin, timeout=30).json()["sessions"]["streamable_http"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert result_of(rpc(url_b, "tools/list", {}, carol, idle))["tools"]  # adopted again there


OWNERS = st.one_of(st.none(), st.tuples(st.text(max_size=20), st.none() | st.text(max_size=20),
                                        st.none() | st.text(max_size=20)))
STATES = st.builds(SessionState, st.sampled_from(["2025-11-25", "2025-06-18"]),
                   st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=5), OWNERS,
                   st.floats(min_value=1e9, max_value=2e9))


@settings(max_examples=50, deadline=None)
@given(state=STATES, flip=st.integers(min_value=3))
def test_sealed_ids_open_to_what_was_sealed_and_any_alteration_is_refused(state: SessionState, flip: int) -> None:
    old, new = SessionSealer([SECRET_A], 1e12), SessionSealer([SECRET_B, SECRET_A], 1e12)
    sealed = old.seal(state)
    assert new.open(sealed, now=state.issued_at) == state  # rotation: the old secret still opens
    assert SessionSealer([SECRET_B], 1e12).open(sealed, now=state.issued_at) is None  # an unknown secret does not
    position = 3 + flip % (len(sealed) - 3)
    altered = sealed[:position] + ("A" if sealed[position] != "A" else "B") + sealed[position + 1:]
    opened = new.open(altered, now=state.issued_at)
    assert opened is None or opened == state  # base64 padding bits aside, no altered id opens to other state
    assert SessionSealer([SECRET_A], 60).open(sealed, now=state.issued_at + 61) is None  # too old
