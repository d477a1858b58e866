"""Log messages a server tagged with a task (`_meta` `io.modelcontextprotocol/related-task`), routed by
that tag to the task's owner (a mixin of `hub.relay.logs.LogRelay`, whose module states the rules), and
what every relayed message carries: its `logger` tagged with the server's namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mcp_types as types

from hub.auth.principal import identity
from hub.relay.log_levels import RANK
from hub.relay.scope import may_see_server

if TYPE_CHECKING:
    from mcp.server.connection import Connection

    from hub.auth.principal import Principal
    from hub.downstream.connection import Downstream
    from hub.hub import Hub
    from hub.relay.task_model import RelayedTask

__all__ = ["RELATED_TASK", "Audience", "TaskLogs", "related_task_id", "tag_logger"]

Audience = frozenset[tuple[str, str]] | None
"""Whose clients a shared session's message may reach (principals' identities); None: no restriction."""


def tag_logger(namespace: str, server_logger: str | None) -> str:
    """The `logger` a relayed message carries: the server's namespace, then its own logger if any."""
    return f"{namespace}/{server_logger}" if server_logger else namespace


RELATED_TASK = "io.modelcontextprotocol/related-task"


def related_task_id(params: Any) -> str | None:
    """The server's own id of the task a message is about (`_meta` `related-task`), or None."""
    meta = getattr(params, "meta", None)
    related = meta.get(RELATED_TASK) if isinstance(meta, dict) else None
    task_id = related.get("taskId") if isinstance(related, dict) else None
    return task_id if isinstance(task_id, str) else None


class TaskLogs:
    """Routing by a message's `related-task` tag (state on `LogRelay`)."""

    _hub: Hub

    if TYPE_CHECKING:  # provided by `hub.relay.log_levels.LevelFanOut`
        def listeners(self) -> list[tuple[Connection, str | None, Principal]]: ...
        def listener(self, connection: Any) -> tuple[str | None, Principal] | None: ...

    def _task_of(self, downstream: Downstream, owner: Any, task_id: str) -> RelayedTask | None:
        """The task `task_id` the hub relayed on the session this message came from (`owner`'s own of a
        `per_client` server, else the shared one); None when the hub never relayed it there, has
        forgotten it (evicted, its record gone), or that session is no longer open."""
        tasks = getattr(getattr(self._hub, "request_relay", None), "tasks", None)
        if tasks is None:
            return None
        try:
            client = (downstream.pool.client_of(owner) if owner is not None and downstream.pool is not None
                      else downstream.client())
        except Exception:  # noqa: BLE001 — down meanwhile: which session wrote it cannot be told
            client = None
        session = getattr(client, "session", None)
        if session is None:  # never by the id alone: two sessions number their tasks alike (`per_client`)
            return None
        _, task = tasks.related_task(downstream.name, {RELATED_TASK: {"taskId": task_id}}, session)
        return task

    def task_audience(self, downstream: Downstream, params: Any) -> Audience:
        """For another replica (`audience`): a task's message is never the server's own news. While its
        creating connection lives here it got it here (nobody's elsewhere); once gone, its principal's."""
        task = self._task_of(downstream, None, related_task_id(params) or "")
        if task is None or task.principal is None or (task.owner is not None and task.owner() is not None):
            return frozenset()
        return frozenset({identity(task.principal)})

    async def _to_task_owner(self, downstream: Downstream, params: types.LoggingMessageNotificationParams,
                             owner: Any, task_id: str, rank: int) -> None:
        """A message the server tagged with `related-task` (the 2025-11-25 spec has a server tag everything
        about a task): to the connection that created the task, if it listens (it set a level, or never set
        one); once that connection is gone (a disconnect is not a cancel: the task runs on), to its principal's
        connections that listen,
        while the hub still holds the task as that principal's; else to nobody — never to whoever happens
        to be calling, never as the server's own news (outside review isolation21 #1: alice's task's line
        reached bob once alice's session ended). The client sees the task's id as it knows it."""
        task = self._task_of(downstream, owner, task_id)
        if task is None or task.principal is None or not may_see_server(self._hub, task.principal, downstream.name):
            return
        creator = task.owner() if task.owner is not None else None
        if creator is not None:
            targets = [creator] if self.listener(creator) is not None else []
        else:
            whose = identity(task.principal)
            targets = [c for c, _, p in self.listeners() if identity(p) == whose]
        body: dict[str, Any] | None = None
        for connection in targets:
            asked = self.listener(connection)
            if (asked is None or (asked[0] is not None and rank < RANK[asked[0]])
                    or not may_see_server(self._hub, asked[1], downstream.name)):
                continue
            if body is None:
                body = params.model_dump(by_alias=True, mode="json", exclude_none=True)
                body["logger"] = tag_logger(downstream.config.namespace or downstream.name, params.logger)
                meta = dict(body.get("_meta") or {})
                meta[RELATED_TASK] = {**meta.get(RELATED_TASK, {}), "taskId": task.exposed}
                body["_meta"] = meta
            await connection.notify("notifications/message", body)  # best effort: never raises
