"""The hub's answer to a `tools/call` of a name it does not expose to the caller.

Decision (docs/protocol.md, "Unknown tools"): an `isError` result with `structuredContent`
`{code: "not_found", message, retryable: false, details: {tool}}`, not JSON-RPC -32602. The
2025-11-25 spec lists unknown tools under protocol errors, but the reference servers (the TS and
Python SDKs, server-everything) answer an `isError` result and the official conformance suite
expects one; a hub must answer what the server behind it would. The text is the same whether the
tool does not exist or the caller may not see it, so probing names learns nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mcp_types as types

from hub.auth.principal import Principal
from hub.errors import HubToolError
from hub.search.meta import not_callable, search_mode_for

if TYPE_CHECKING:
    from hub.hub import Hub

NAME_SHOWN = 128
"""At most this many characters of the asked name are echoed back."""


def unknown_tool_result(hub: Hub, name: str, principal: Principal) -> types.CallToolResult:
    """The `not_found` result for `name`; in search mode it points at `search_tools` instead of the list."""
    if search_mode_for(hub, principal):
        return not_callable(name)
    shown = name[:NAME_SHOWN]
    return HubToolError("not_found", f"no tool named {shown!r} that you may call; list the tools (tools/list) "
                        "and call one by a name from that list", details={"tool": shown}).to_result()
