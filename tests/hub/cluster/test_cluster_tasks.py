"""2025-11-25 tasks across replicas (`hub.cluster.tasks`; outside review, cluster round 18 #5: a task
created through replica A was "task not found" on replica B, the answer for a task that does not
exist). Two `mcp-hub serve` replicas sharing a session secret and a real Redis; `t` is the in-process
task fixture (a task runs until `release`d). Any replica serving the session answers about its tasks
and lists them all;
an id of another session, or altered, is still "not found"; a holder that stopped is named."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Proc
from tests.haproxy_cluster import sealed_replicas
from tests.hub.cluster.test_cluster_session_state import open_session, post

pytestmark = [pytest.mark.slow]
TASKS = {"t": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[str], list[Proc]]]:
    """Replicas A and B (Redis + one session secret, auth off) and their processes, stopped before Redis."""
    with sealed_replicas(tmp_path, TASKS) as (urls, procs, _):
        yield urls, procs


def answer(url: str, method: str, params: dict[str, Any], session: str, request_id: int = 9) -> dict[str, Any]:
    _, messages = post(url, method, params, session, request_id=request_id)
    return messages[-1]


def create(url: str, session: str, topic: str) -> str:
    made = answer(url, "tools/call", {"name": "t__research", "arguments": {"topic": topic}, "task": {"ttl": 60000}}, session)
    return made["result"]["task"]["taskId"]


def test_a_task_made_on_one_replica_is_answered_on_the_other(cluster: tuple[list[str], list[Proc]]) -> None:
    (url_a, url_b), _ = cluster
    session = open_session(url_a)
    task = create(url_a, session, "payroll")
    assert task.startswith("t:t1@")  # names the replica holding it
    on_b = answer(url_b, "tasks/get", {"taskId": task}, session)
    assert on_b["result"]["taskId"] == task and on_b["result"]["status"] == "working", on_b

    result: dict[str, Any] = {}
    waiting = threading.Thread(target=lambda: result.update(answer(url_b, "tasks/result", {"taskId": task}, session)))
    waiting.start()  # blocks on B until the task ends on A's server
    answer(url_a, "tools/call", {"name": "t__release", "arguments": {"task": "t1"}}, session)
    waiting.join(60)
    assert "researched payroll" in json.dumps(result.get("result")), result

    second = create(url_b, session, "audit")  # made on B, cancelled through A
    for url in (url_a, url_b):  # either replica lists both
        listed = answer(url, "tasks/list", {}, session)["result"]["tasks"]
        assert sorted(t["taskId"] for t in listed) == sorted([task, second]), listed
    cancelled = answer(url_a, "tasks/cancel", {"taskId": second}, session)
    assert cancelled["result"]["status"] == "cancelled", cancelled

    # Altered, or another session's: not found, exactly as an id that never existed.
    altered = task[:-1] + ("A" if task[-1] != "A" else "B")
    other = open_session(url_a)
    for session_id, asked in ((session, altered), (other, task)):
        refused = answer(url_b, "tasks/get", {"taskId": asked}, session_id)
        assert refused["error"]["code"] == -32602 and "task not found" in refused["error"]["message"], refused


def test_a_task_whose_replica_stopped_is_named_not_called_missing(cluster: tuple[list[str], list[Proc]]) -> None:
    (url_a, url_b), procs = cluster
    session = open_session(url_a)
    task = create(url_a, session, "payroll")
    procs[0].stop()
    refused = answer(url_b, "tasks/get", {"taskId": task}, session)["error"]
    assert refused["code"] == -32602 and "held by another replica" in refused["message"], refused
    assert refused["data"]["reason"] == "other_replica"
