"""The hub's answer to a `tools/call` of a name it does not expose to the caller.

Decision (docs/protocol.md, "Unknown tools"): an `isError` result with `structuredContent`
`{code: "not_found", message, retryable: false, details: {tool}}`, not JSON-RPC -32602. The
2025-11-25 spec lists unknown tools under protocol errors, but the reference servers (the TS and
Python SDKs, server-everything) answer an `isError` result and the official conformance suite
expects one; a hub must answer what the server behind it would. The text is the same whether the
tool does not exist or the caller may not see it, so probing names learns nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

import mcp_types as types

from hub.auth.principal import Principal
from hub.errors import HubRefusal, HubToolError
from hub.search.meta import not_callable, search_mode_for

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.profiles import ProfileView

NAME_SHOWN = 128
"""At most this many characters of the asked name are echoed back."""


answering_view: ContextVar[ProfileView | None] = ContextVar("mcp_hub_answering_view", default=None)
"""The profile of the face resolving the current request's tool name (`SearchFront.target` sets it), for
callers of `unknown_tool_result` that do not pass their view (None: the whole hub)."""


def unknown_tool_result(hub: Hub, name: str, principal: Principal,
                        view: ProfileView | None = None) -> types.CallToolResult:
    """The `not_found` result for `name`; in search mode it points at `search_tools` instead of the list.
    The mode is the profile's where the call came in on one (`view`, else `answering_view`): outside review
    search19 #4, an `all` profile on a `search` hub pointed at a `search_tools` it does not list."""
    if search_mode_for(hub, principal, view if view is not None else answering_view.get()):
        return not_callable(name)
    shown = name[:NAME_SHOWN]
    return HubToolError("not_found", f"no tool named {shown!r} that you may call; list the tools (tools/list) "
                        "and call one by a name from that list", details={"tool": shown}).to_result()


def not_ready_refusal(hub: Hub, name: str, principal: Principal) -> HubRefusal | None:
    """For a name under the namespace of a server the caller may see that is not ready (starting, down,
    stopped): `unavailable` naming its state and last error, instead of `not_found` — its tool may well
    exist once it connects. None when no such server owns the name's namespace."""
    for downstream in hub.downstreams.values():
        namespace = downstream.config.namespace
        if not namespace or not name.startswith(namespace + "__") or downstream.state == "ready":
            continue
        if not hub.access.may_read(principal, downstream.name):
            continue  # a server the caller may not see: answered like any unknown name
        why = downstream.error or "its first connection attempt is not finished"
        reason = "starting" if downstream.state == "starting" else "down"
        if reason == "down" and downstream.needs_operator:  # calling again will not help (`hub.calls.errors._down`)
            return HubRefusal("unavailable", f"server {downstream.name!r} is down ({why}), so {name[:128]!r} cannot be "
                              "called; the hub's operator must fix this server's entry in the hub's config (calling "
                              "again will not help until then), see `mcp-hub status`", retryable=False,
                              details={"server": downstream.name, "state": downstream.state, "reason": reason,
                                       "needs": "operator"})
        return HubRefusal("unavailable", f"server {downstream.name!r} is {downstream.state} ({why}), so {name[:128]!r} "
                          "cannot be called now; retry after retry_after_s, or see `mcp-hub status`",
                          retry_after_s=downstream.retry_after_s(),
                          details={"server": downstream.name, "state": downstream.state, "reason": reason})
    return None
