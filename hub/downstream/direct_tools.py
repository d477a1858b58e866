"""Direct dispatch to the tools of an in-process `MCPServer`.

Through the SDK's direct dispatcher, an in-process call still runs the whole server-side request
machinery: the server's runner and middleware, a request context, and the result's dump →
validate → dump for the wire, which the hub's own runner then repeats for its client. For a tool
that none of that can reach, the hub awaits `MCPServer.call_tool` instead, and the result goes
out once, through the hub's runner.

A tool qualifies when nothing the runner does could matter to it:
- it takes no `Context` (so no progress, logging, elicitation or session access) and no
  `Resolve(...)` parameters (which may ask the client for input);
- its server has no middleware beyond the SDK's own (OpenTelemetry, request-state) and no
  extensions (which may intercept `tools/call`).
Every other tool — and every server this module cannot inspect, say after an SDK change to the
private attributes read here — keeps the dispatcher path, so the worst case is the old speed.
Failures are turned into results exactly as the SDK's `tools/call` handler does.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

logger = logging.getLogger("hub.downstream.direct")

_SDK_MIDDLEWARE = frozenset({"OpenTelemetryMiddleware", "RequestStateBoundary"})


class DirectTools:
    """The direct callers of one in-process `MCPServer`'s qualifying tools."""

    def __init__(self, server: MCPServer) -> None:
        self._server = server
        self._tools = getattr(server, "_tool_manager", None)  # noqa: SLF001 — see the module docstring
        extensions = getattr(server, "_extensions", None)
        self._plain_server = (
            self._tools is not None
            and extensions is not None
            and not extensions
            and all(type(m).__name__ in _SDK_MIDDLEWARE for m in server.middleware)
        )

    def qualifies(self, name: str) -> bool:
        """Whether tool `name` may be called directly; if not, it goes through the server's runner."""
        if not self._plain_server:
            return False
        tool = self._tools.get_tool(name)  # type: ignore[union-attr]
        return tool is not None and getattr(tool, "context_kwarg", "?") is None and not getattr(tool, "resolved_params", True)

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """`MCPServer.call_tool` for a tool that `qualifies`, with failures reported as the SDK's
        `tools/call` handler reports them."""
        try:
            result = await self._server.call_tool(name, arguments)
        except MCPError:
            raise
        except Exception as exc:
            if isinstance(exc, ToolError) and not isinstance(exc, UnexpectedToolError):
                if isinstance(exc.__cause__, ValidationError):
                    # Field names only: the rejected values are the caller's data.
                    fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.__cause__.errors()})
                    logger.info("Tool %r rejected arguments: %r", name, fields)
                else:
                    logger.info("Tool %r failed: %r", name, str(exc))
            else:
                logger.exception("Tool %r raised an unexpected exception", name)
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(exc))], is_error=True)
        if not isinstance(result, types.CallToolResult):
            raise RuntimeError(f"tool {name!r} answered {type(result).__name__}, which a direct call cannot relay")
        return result
