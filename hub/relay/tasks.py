"""Task-augmented tools (2025-11-25 `execution.taskSupport`) through the hub.

Rule (docs/domains.md, "Protocol relay"): the hub does not relay task-augmented calls or
`tasks/*` yet, so a tool whose `taskSupport` is `"required"` could be listed but never called.
Such a tool is left out of the catalog, with one warning per server and tool naming why; tools
with `"optional"` or `"forbidden"` (or none) are listed and called normally, without a task.
"""

from __future__ import annotations

import logging

import mcp_types as types

logger = logging.getLogger("hub.relay.tasks")

_warned: set[tuple[str, str]] = set()


def callable_through_hub(server: str, tool: types.Tool) -> bool:
    """False (and a warning, once) for a tool that can only be called as a task."""
    if tool.execution is None or tool.execution.task_support != "required":
        return True
    if (server, tool.name) not in _warned:
        _warned.add((server, tool.name))
        logger.warning("server %r: tool %r not exposed: it must be called as a task (taskSupport: required), "
                       "and the hub does not relay tasks yet", server, tool.name)
    return False
