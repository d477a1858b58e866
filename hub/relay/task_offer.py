"""What clients are offered of 2025-11-25 tasks: the hub's `tasks` capability and the task-only tools
they may list (rules in `hub.relay.tasks`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mcp_types as types
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.downstream.connection import DownstreamUnavailable
from hub.relay.task_model import TASK_CAPABILITY, task_only

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.hub import Hub


class TaskOffer:
    """Which servers take task-augmented `tools/call`, as their sessions advertise it now."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def server_takes_tasks(self, server: str) -> bool:
        """Whether `server` is connected and advertises task-augmented `tools/call`."""
        downstream = self._hub.downstreams.get(server)
        try:
            caps = downstream.client().server_capabilities if downstream is not None else None
        except DownstreamUnavailable:
            return False
        tasks = caps.tasks if caps is not None else None
        return bool(tasks and tasks.requests and tasks.requests.tools and tasks.requests.tools.call is not None)

    def _starting(self, server: str) -> bool:
        downstream = self._hub.downstreams.get(server)
        return downstream is not None and downstream.state == "starting"

    def advertised(self) -> types.ServerTasksCapability | None:
        """The hub's `tasks` capability: present while any server takes task-augmented calls or is still
        starting (`initialize` does not wait for servers; a call to a server without tasks runs normally)."""
        servers = self._hub.downstreams
        return TASK_CAPABILITY if any(self._starting(name) or self.server_takes_tasks(name) for name in servers) else None

    def listable(self, tools: list[types.Tool], protocol_version: str | None,
                 resolve: Callable[[str], str | None] = lambda name: name) -> list[types.Tool]:
        """`tools` without the task-only ones this client could not call: all of them for a 2026-07-28
        client, and those of servers that do not take task-augmented calls for anyone (a server still
        starting, listed from a remembered listing, is given the benefit of the doubt). `resolve`: a
        listed name → the hub-wide one (a profile's short names)."""
        if not any(task_only(tool) for tool in tools):
            return tools
        modern = protocol_version in MODERN_PROTOCOL_VERSIONS
        catalog = self._hub.catalog
        kept = []
        for tool in tools:
            if task_only(tool):
                exposed = resolve(tool.name)
                route = catalog.resolve_tool(exposed) if exposed is not None else None
                if modern or route is None or not (self._starting(route.server) or self.server_takes_tasks(route.server)):
                    continue
            kept.append(tool)
        return kept
