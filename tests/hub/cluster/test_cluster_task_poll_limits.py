"""A task poll sent to a replica that does not hold the task is charged to the caller's rate limit there
(`hub.relay.tasks.TaskRelay._elsewhere`; outside review, cluster round 26 #5: neither replica charged it,
so with round-robin most polls were never limited). Two `mcp-hub serve` replicas sharing a session
secret, a real Redis and its rate-limit buckets (a burst of 3, next to no refill), auth off."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Proc, hub_command, write_config
from tests.haproxy_cluster import Redis
from tests.hub.cluster.test_cluster_session_state import open_session, post
from tests.hub.test_hygiene import wait_ready

pytestmark = [pytest.mark.slow]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, str]]:
    server = Redis()
    procs: list[Proc] = []
    try:
        config = write_config(tmp_path, {"t": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}},
                              hub={"cluster": {"redis_url": server.url, "session_secrets": [secrets.token_urlsafe(32)]},
                                   "rate_limit": {"backend": "redis", "redis_url": server.url,
                                                  "per_principal": {"burst": 3, "per_second": 0.01}}})
        urls = []
        for name in ("a", "b"):
            procs.append(Proc(hub_command(config, "--transport", "http", "--port", "0"),
                              env={"MCP_HUB_DATA_DIR": str(tmp_path / name)}))
            urls.append(procs[-1].wait_for_line(r"mcp-hub listening on (\S+)", timeout=60).group(1))
        for url in urls:
            wait_ready(url)
        yield urls[0], urls[1]
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()


def test_polls_through_a_replica_not_holding_the_task_are_rate_limited(replicas: tuple[str, str]) -> None:
    url_a, url_b = replicas
    session = open_session(url_a)
    made = post(url_a, "tools/call", {"name": "t__research", "arguments": {"topic": "x"}, "task": {"ttl": 60000}},
                session, request_id=2)[1][-1]
    task = made["result"]["task"]["taskId"]
    answers = [post(url_b, "tasks/get", {"taskId": task}, session, request_id=3 + i)[1][-1] for i in range(6)]
    limited = [a for a in answers if "error" in a and "rate limit" in a["error"]["message"].lower()]
    assert limited, f"6 polls through B past a burst of 3 were all answered: {answers}"
    assert all("result" in a for a in answers[:len(answers) - len(limited)]), answers  # answered, then limited
