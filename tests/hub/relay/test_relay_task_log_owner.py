"""A log message a shared server tags with `_meta` `io.modelcontextprotocol/related-task` goes to that
task's owner only, by the tag, never by who happens to be calling (outside review isolation21 #1: once
alice's connection ended, the line about her still-running task reached bob, who had set a log level):
its creating connection; once that is gone, its principal's connections that set a level, while the
hub holds the task; nobody when the hub never relayed (or forgot) the task. End to end:
/tmp/review-isolation21/repro_task_log_reaches_other_caller.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import mcp_types as types
import pytest

from hub.auth.principal import Principal, identity
from hub.downstream.stats import CallStats
from hub.relay.logs import LogRelay
from hub.relay.task_model import RelayedTask
from hub.relay.tasks import TaskRelay
from hub.downstream.serials import session_serial

pytestmark = pytest.mark.anyio

ALICE = Principal("alice", ("raw:write",), "api_key", "k1")
BOB = Principal("bob", ("raw:write",), "api_key", "k2")
RELATED = "io.modelcontextprotocol/related-task"


class Connection:
    """A client connection: what it was notified of."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    async def notify(self, method: str, body: dict[str, Any]) -> None:
        assert method == "notifications/message"
        self.got.append(body)


class Session:
    """A downstream session (weakly referenced by `session_serial`)."""


def wiring() -> tuple[Any, Any, LogRelay, TaskRelay]:
    session = Session()
    downstream = SimpleNamespace(name="raw", stats=CallStats(), config=SimpleNamespace(namespace="raw"), pool=None,
                                 client=lambda: SimpleNamespace(session=session))
    hub = SimpleNamespace(downstreams={"raw": downstream}, access=SimpleNamespace(may_read=lambda p, s: True),
                          catalog=SimpleNamespace(routes=lambda: []))
    tasks = TaskRelay(hub)  # type: ignore[arg-type]
    hub.request_relay = SimpleNamespace(tasks=tasks)
    return hub, downstream, LogRelay(hub), tasks  # type: ignore[arg-type]


def line(task_id: str | None, text: str) -> types.LoggingMessageNotificationParams:
    meta = {RELATED: {"taskId": task_id}} if task_id is not None else None
    return types.LoggingMessageNotificationParams(level="info", logger="stash", data=text, _meta=meta)


def texts(connection: Connection) -> list[str]:
    return [body["data"] for body in connection.got]


async def test_a_task_tagged_line_reaches_its_owner_only_and_after_its_connection_ends_its_principal_only() -> None:
    hub, downstream, logs, tasks = wiring()
    alice, alice2, bob = Connection(), Connection(), Connection()
    for connection, principal in ((alice, ALICE), (alice2, ALICE), (bob, BOB)):
        logs._clients[connection] = ("info", principal)  # each sent logging/setLevel info
    task = RelayedTask("raw:t1", "raw", "t1", ALICE, session_serial(downstream.client().session))
    task.running = downstream.stats.task_running(identity(ALICE), 60)
    tasks._own(alice, task)

    await logs.relay(downstream, line("t1", "S1 alice's task"))
    assert texts(alice) == ["S1 alice's task"] and not alice2.got and not bob.got, "her task's connection only"
    assert alice.got[0]["_meta"][RELATED]["taskId"] == "raw:t1" and alice.got[0]["logger"] == "raw/stash"

    downstream.stats.start(identity(BOB))  # bob's call in flight: the line is still alice's, by its tag
    await logs.relay(downstream, line("t1", "S2 while bob calls"))
    downstream.stats.finish(0.0, False, identity(BOB))
    assert texts(alice)[-1] == "S2 while bob calls" and not bob.got

    tasks.release(alice)  # alice's session ended: a disconnect is not a cancel, the task runs on
    del logs._clients[alice]
    await logs.relay(downstream, line("t1", "S3 after alice left"))
    assert not bob.got, "never another principal's"
    assert texts(alice2) == ["S3 after alice left"], "her principal's other connection that set a level"
    assert downstream.stats.calling() == {identity(ALICE)}, "her released task still counts as hers until its bound"

    await logs.relay(downstream, line("t9", "S4 a task the hub never relayed"))
    assert not bob.got and texts(alice2) == ["S3 after alice left"], "nobody's, not the server's own news"
    await logs.relay(downstream, line(None, "S5 untagged"))  # untagged while alice's task may run: hers
    assert not bob.got and texts(alice2)[-1] == "S5 untagged"
