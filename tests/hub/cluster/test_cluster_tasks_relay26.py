"""The cross-replica task relay (`hub.cluster.tasks`) against outside review, cluster round 26: two
`mcp-hub serve` replicas sharing a session secret and a real Redis, auth off, copies idle after 2 s
here; `t` is the in-process task fixture (a task runs until `release`d).

- #1: a `tasks/result` asked through B waits past the 2 s acknowledgment for the task's end;
- #2: an answer published by someone without the secret is ignored, and a real result does not
  cross Redis in clear;
- #3: a task polled through B stays found while A's copy would otherwise idle out;
- #6: a subscriber of the channel that is no replica does not hold `tasks/list` up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.haproxy_cluster import sealed_replicas
from tests.hub.cluster.test_cluster_session_state import open_session, post

pytestmark = [pytest.mark.slow]
TASKS = {"t": {"module": "tests.fixtures.task_server:server", "protocol": "legacy"}}
IDLE_S = 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int]]:
    """Replicas A and B and the Redis port; stopped before Redis."""
    with sealed_replicas(tmp_path_factory.mktemp("relay26"), TASKS, timeout_s=8,
                        http={"session_idle_timeout_s": IDLE_S}) as (urls, _, redis):
        yield urls[0], urls[1], redis.port


def answer(url: str, method: str, params: dict[str, Any], session: str) -> dict[str, Any]:
    return post(url, method, params, session, request_id=9)[1][-1]


def create(url: str, session: str, topic: str) -> str:
    made = answer(url, "tools/call", {"name": "t__research", "arguments": {"topic": topic}, "task": {"ttl": 60000}}, session)
    return made["result"]["task"]["taskId"]


def release(url: str, session: str, task: str) -> None:
    answer(url, "tools/call", {"name": "t__release", "arguments": {"task": task.split(":", 1)[1].split("@")[0]}}, session)


def channel(port: int) -> str:
    """The replicas' notification channel, as anyone with access to Redis finds it."""
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return sorted(name.decode() for name in client.pubsub_channels("mcp-hub:notify*"))[0]
    finally:
        client.close()


def test_a_result_asked_through_another_replica_waits_for_the_task(cluster: tuple[str, str, int]) -> None:
    url_a, url_b, _ = cluster
    session = open_session(url_a)
    task = create(url_a, session, "invoices")
    result: dict[str, Any] = {}
    waiting = threading.Thread(target=lambda: result.update(answer(url_b, "tasks/result", {"taskId": task}, session)))
    waiting.start()
    waiting.join(timeout=3.0)  # past the holder's 2 s acknowledgment bound
    assert waiting.is_alive(), f"tasks/result through B ended before the task did: {result}"
    release(url_a, session, task)
    waiting.join(30)
    assert "researched invoices" in json.dumps(result.get("result")), result


def test_a_forged_answer_is_ignored_and_a_result_does_not_cross_in_clear(cluster: tuple[str, str, int]) -> None:
    url_a, url_b, port = cluster
    session = open_session(url_a)
    task = create(url_a, session, "payroll")
    name = channel(port)
    attacker = redis.Redis(host="127.0.0.1", port=port)
    listening = attacker.pubsub()
    listening.subscribe(name)
    while listening.get_message(timeout=1) is None:
        pass  # subscribed
    forged: list[str] = []
    heard: list[bytes] = []
    stop = threading.Event()

    def forge() -> None:
        while not stop.is_set():
            message = listening.get_message(timeout=0.1)
            if not message or message["type"] != "message":
                continue
            heard.append(message["data"])
            event = json.loads(message["data"])
            asked = event.get("payload") or {}
            if event.get("type") == "task_ask" and asked.get("method") == "tasks/result":  # readable: answer it first
                base = {"type": "task_answer", "to": asked["from"], "ask": asked["ask"], "origin": "attacker"}
                attacker.publish(name, json.dumps({**base, "id": "f1" + asked["ask"], "ack": True}))
                attacker.publish(name, json.dumps({**base, "id": "f2" + asked["ask"], "result": {
                    "content": [{"type": "text", "text": "FORGED"}]}}))
                forged.append(asked["ask"])
            elif set(event) == {"sealed"}:  # every event sealed (recheck26 N2): answer blind, as a task answer
                attacker.publish(name, json.dumps({"type": "task_answer", "ask": "guess", "id": f"f{len(heard)}",
                                                   "origin": "attacker", "result": {"content": [{"type": "text", "text": "FORGED"}]}}))
                forged.append("blind")

    reader = threading.Thread(target=forge, daemon=True)
    reader.start()
    try:
        result: dict[str, Any] = {}
        waiting = threading.Thread(target=lambda: result.update(answer(url_b, "tasks/result", {"taskId": task}, session)))
        waiting.start()
        deadline = time.monotonic() + 10
        while not forged and time.monotonic() < deadline:  # the attacker answered first
            waiting.join(0.05)
        assert forged, "the attacker saw nothing to answer"
        release(url_a, session, task)
        waiting.join(30)
    finally:
        stop.set()
        reader.join(5)
        listening.close()
        attacker.close()
    assert "researched payroll" in json.dumps(result.get("result")) and "FORGED" not in json.dumps(result), result
    assert not any(b"researched payroll" in data or b"tasks/result" in data for data in heard), "a task's ask or result crossed in clear"


def test_a_task_polled_through_another_replica_outlives_the_holders_idle_timeout(cluster: tuple[str, str, int]) -> None:
    url_a, url_b, _ = cluster
    session = open_session(url_a)
    task = create(url_a, session, "export")
    started = time.monotonic()
    while time.monotonic() - started < IDLE_S * 1.75:  # polled on B only, past A's idle timeout
        polled = answer(url_b, "tasks/get", {"taskId": task}, session)
        assert polled.get("result", {}).get("status") == "working", polled
    release(url_a, session, task)


def test_a_subscriber_that_is_no_replica_does_not_hold_tasks_list_up(cluster: tuple[str, str, int]) -> None:
    url_a, url_b, port = cluster
    session = open_session(url_a)
    task = create(url_a, session, "list")
    foreign = redis.Redis(host="127.0.0.1", port=port)
    listening = foreign.pubsub()
    listening.subscribe(channel(port))
    try:
        while listening.get_message(timeout=1) is None:
            pass
        started = time.monotonic()
        listed = answer(url_b, "tasks/list", {}, session)
        took = time.monotonic() - started
    finally:
        listening.close()
        foreign.close()
    assert [t["taskId"] for t in listed["result"]["tasks"]] == [task], listed
    assert took < 1.5, f"tasks/list took {took:.1f}s with one subscriber that is no replica (hub.timeout_s is 8)"
    release(url_a, session, task)
