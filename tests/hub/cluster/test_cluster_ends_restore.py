"""A session's end survives a Redis restart without persistence on a replica that never saw it
(`hub.cluster.ended_sessions.restore_ends`; outside review, cluster round 26 #7: a session DELETEd on B
was served again by A once Redis came back empty). Two `mcp-hub serve` replicas sharing a session
secret and a throwaway `redis-server --save ''` restarted on the same port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster_support import need_binary
from tests.conftest import Proc, wait_for_port
from tests.haproxy_cluster import Redis, sealed_replicas
from tests.hub.cluster.test_cluster_session_state import HEADERS, open_session, post

pytestmark = [pytest.mark.slow]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, str, Redis]]:
    """Replicas A and B (auth off) and their Redis; stopped before Redis."""
    with sealed_replicas(tmp_path, {"t": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}}) as (urls, _, redis):
        yield urls[0], urls[1], redis


def notifications(url: str) -> str:
    return str(httpx.get(url.replace("/mcp", "/healthz"), timeout=5).json()["notifications"]["state"])


def wait_state(urls: tuple[str, ...], state: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(notifications(url) != state for url in urls):
        assert time.monotonic() < deadline, f"replicas' notifications never became {state!r}"
        time.sleep(0.1)


def test_an_end_made_on_one_replica_survives_a_redis_restart_on_the_other(replicas: tuple[str, str, Redis]) -> None:
    url_a, url_b, server = replicas
    session = open_session(url_b)
    ended = httpx.delete(url_b, headers={**HEADERS, "Mcp-Session-Id": session}, timeout=10)
    assert ended.status_code < 300, ended.text
    # Redis restarts empty (no persistence), on the same port.
    server.proc.stop()
    wait_state((url_a, url_b), "unreachable")
    server.proc = Proc([need_binary("redis-server", "redis-server"), "--port", str(server.port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no"])
    wait_for_port(server.port)
    wait_state((url_a, url_b), "ok")
    refused = httpx.post(url_a, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={**HEADERS, "Mcp-Session-Id": session}, timeout=10)
    assert refused.status_code == 404, f"A continued a session DELETEd on B: {refused.status_code} {refused.text[:200]}"
    post(url_b, "tools/list", None, open_session(url_a))  # a new session still works
