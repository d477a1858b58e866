"""Registering domain tools on an `MCPServer`: pydantic output, agent-readable errors.

`@domain_tool(server, ...)` registers an async function whose return annotation is a pydantic
model (→ `outputSchema` + `structuredContent`, with the JSON also in a text block). A
`DomainError` raised inside becomes an `isError` result with the hub's error shape instead of a
bare message; any other exception becomes `internal` without leaking its text.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp.server import MCPServer
from pydantic import BaseModel

from hub.errors import HubToolError

logger = logging.getLogger("servers")
F = TypeVar("F", bound=Callable[..., Awaitable[BaseModel]])


def ok(model: BaseModel) -> types.CallToolResult:
    payload = model.model_dump(mode="json", by_alias=True)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=model.model_dump_json(by_alias=True))],
        structured_content=payload,
    )


def domain_tool(
    server: MCPServer,
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = True,
    title: str | None = None,
) -> Callable[[F], F]:
    """Register a tool with annotations on every tool (hints the hub uses for retries and scopes)."""
    annotations = types.ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive if not read_only else None,
        idempotent_hint=idempotent or read_only,
        open_world_hint=open_world,
    )

    def register(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return ok(await fn(*args, **kwargs))
            except HubToolError as exc:
                return exc.to_result()
            except Exception:  # boundary: the agent gets a code, the log gets the traceback
                logger.exception("tool %s failed", fn.__name__)
                return HubToolError("internal", f"{fn.__name__} failed unexpectedly; the server log has details").to_result()

        server.add_tool(wrapper, name=fn.__name__, description=(fn.__doc__ or "").strip(), annotations=annotations)
        return fn

    return register
