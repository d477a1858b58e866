"""A task poll sent to a replica that does not hold the task is charged to the caller's rate limit there
(`hub.relay.task_replicas.TaskReplicas.ask`; outside review, cluster round 26 #5: neither replica charged it,
so with round-robin most polls were never limited). Two `mcp-hub serve` replicas sharing a session
secret, a real Redis and its rate-limit buckets (a burst of 3, next to no refill), auth off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.haproxy_cluster import sealed_replicas
from tests.hub.cluster.test_cluster_session_state import open_session, post

pytestmark = [pytest.mark.slow]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with sealed_replicas(tmp_path, {"t": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}},
                        rate_limit={"backend": "redis", "per_principal": {"burst": 3, "per_second": 0.01}}) as (urls, _, redis):
        yield urls[0], urls[1]


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
