"""A task-augmented `tools/call`'s progress token, kept for the task's lifetime (2025-11-25 progress rule 3:
the token "MUST continue to be used ... even after the `CreateTaskResult` has been returned").

The server is sent a token of the hub's own (unique, unguessable: two clients may both pick `1`), and its
progress under it goes to the client connection that created the task, with the client's own token, on
that connection's own stream, until the task is seen terminal or is forgotten (`hub.relay.tasks`).
Outside review relay18 D3: the hub dropped the token, and a task's progress never reached its client.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types as types

from hub.wire import json_number

if TYPE_CHECKING:
    from hub.auth.principal import Principal
    from hub.relay.tasks import RelayedTask

TERMINAL = frozenset({"completed", "failed", "cancelled"})
"""Task statuses after which a task's progress token is no longer valid."""


@dataclass(eq=False)
class TaskProgress:
    """One task's progress route: the hub's `token` → the client's `client_token` on the connection `owner`."""

    token: str
    client_token: str | int
    server: str
    principal: Principal
    owner: weakref.ref[Any]
    task: RelayedTask | None = None
    """The task, once the server created it (its progress may arrive before the hub reads its answer)."""


class TaskProgressRoutes:
    """The live routes by the hub's token; a route is held by its task (`RelayedTask.progress`), so it goes
    with the task, and its entry here with it."""

    def __init__(self) -> None:
        self._routes: weakref.WeakValueDictionary[str, TaskProgress] = weakref.WeakValueDictionary()

    def open(self, client_token: str | int, server: str, principal: Principal, connection: Any) -> TaskProgress:
        """A route for a task about to be created; the caller holds it (then its task does)."""
        route = TaskProgress(f"mcp-hub-task-{secrets.token_urlsafe(16)}", client_token, server, principal,
                             weakref.ref(connection))
        self._routes[route.token] = route
        return route

    def close(self, task: RelayedTask) -> None:
        """The task is terminal (or forgotten): its token is no longer valid."""
        if task.progress is not None:
            self._routes.pop(task.progress.token, None)
            task.progress = None

    async def relay(self, server: str, params: types.ProgressNotificationParams, owner: Any,
                    visible: Callable[[TaskProgress], bool]) -> None:
        """A task's progress from `server` (from a per-client session of `owner`) to the connection that created
        the task, with its own token, while `visible`; other progress (no task's here, its client gone) is dropped."""
        token = params.progress_token
        route = self._routes.get(token) if isinstance(token, str) else None
        if route is None or route.server != server:
            return
        connection = route.owner()
        if connection is None or (owner is not None and owner is not connection) or not visible(route):
            return
        await connection.notify("notifications/progress", client_progress(route, params))  # best effort: never raises


def client_progress(route: TaskProgress, params: types.ProgressNotificationParams) -> dict[str, Any]:
    """The notification's params as the client knows them: its own token, integral numbers as integers."""
    body: dict[str, Any] = {"progressToken": route.client_token, "progress": json_number(params.progress)}
    if params.total is not None:
        body["total"] = json_number(params.total)
    if params.message is not None:
        body["message"] = params.message
    return body
