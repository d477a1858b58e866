"""A task a client created through the hub, as the relay keeps it (`hub.relay.tasks`), and what a
tool's `execution.taskSupport` says about tasks."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types as types

from hub.auth.principal import Principal

if TYPE_CHECKING:
    from hub.profiles import ProfileView
    from hub.relay.task_progress import TaskProgress

TASK_CAPABILITY = types.ServerTasksCapability(
    list=types.TasksListCapability(), cancel=types.TasksCancelCapability(),
    requests=types.ServerTasksRequestsCapability(tools=types.TasksToolsCapability(call=types.TasksCallCapability())))


def task_only(tool: types.Tool) -> bool:
    """Whether `tool` can be called only as a task (`taskSupport: "required"`)."""
    return tool.execution is not None and tool.execution.task_support == "required"


def takes_tasks(tool: types.Tool) -> bool:
    return tool.execution is not None and tool.execution.task_support in ("optional", "required")


@dataclass(eq=False)
class RelayedTask:
    """A task a client created through the hub."""

    exposed: str
    server: str
    task_id: str
    """The server's own id."""
    principal: Principal | None = None
    session: int | None = None
    """Which downstream session created it (`session_serial` of its `ClientSession`): every `tasks/*`
    about it goes to that session (a `per_client` server: the creator's own), never to another."""
    tool: str = ""
    """The hub-wide name of the tool that created it."""
    view: ProfileView | None = None
    """The profile it was created on (None: the whole catalog)."""
    owner: weakref.ref[Any] | None = None
    """The client connection that created it (held weakly): a request the server sends about the task goes
    to that connection's call in flight only, never to another of the same principal (`related_task`)."""
    running: int | None = None
    """Its token in the server's `CallStats` while it may be running (`task_running`), else None."""
    progress: TaskProgress | None = None
    """Its progress token, while the task is not known to be terminal (`TaskRelay.progress`)."""

    @property
    def key(self) -> str:
        """How its connection's tasks are keyed: `<server>:<taskId>` (`exposed` may carry a replica mark)."""
        return f"{self.server}:{self.task_id}"

    def seen_on(self, view: ProfileView | None) -> bool:
        """Whether a client of `view` may see it: created there, its tool still in that profile."""
        return view is self.view and (view is None or view.includes(self.tool))


RUNNING_BOUND_S = 600.0
"""How long a task whose end the hub never sees counts as running, when the server gave no ttl."""


def running_bound_s(created: dict[str, Any]) -> float:
    """A task's running bound: its ttl (ms) when the server gave one, within an hour; else `RUNNING_BOUND_S`."""
    ttl = created.get("ttl")
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 0:
        return min(float(ttl) / 1000, 3600.0)
    return RUNNING_BOUND_S
