"""Shared pieces of the policy tests: a hand-moved clock, a call, and stand-ins for the forwarder."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from hub.catalog import ToolRoute
from hub.errors import HubRefusal, HubToolError
from hub.policies import ToolCall


class ManualClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_call(read_only: bool = True, timeout_s: float = 5.0, max_timeout_s: float = 10.0,
              arguments: dict[str, Any] | None = None) -> ToolCall:
    tool = types.Tool(name="s__t", input_schema={"type": "object"})
    route = ToolRoute(exposed="s__t", server="s", original="t", tool=tool, read_only=read_only)
    return ToolCall(route, arguments or {}, timeout_s, max_timeout_s)


def down() -> HubRefusal:
    """What the forwarder raises for a server that is down: the hub's own refusal."""
    return HubRefusal("unavailable", "server 's' is down (restarting)", retry_after_s=0.5,
                      details={"server": "s", "reason": "down"})


def lost() -> HubToolError:
    """What the forwarder raises when the connection dies mid-call: evidence against the server."""
    return HubToolError("unavailable", "lost the connection to server 's'", details={"server": "s"})


def ok_result() -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])
