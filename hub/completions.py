"""`completion/complete` through the hub: forwarded to the server behind the reference.

A caller gets completions only for a prompt or resource template it can see (`<namespace>:read`,
as for listing and reading them). Anything else — a name that does not exist, or one behind a
missing scope — is refused with the same INVALID_PARAMS error (the code the spec names for an
invalid prompt name), so completions never reveal what exists behind a scope. A template
reference must name a listed template (or a listed resource URI) exactly. A server that offers
no completions answers "no suggestions". Deadline, errors and a repeat after "session not found": `hub.forwarded`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp import Client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from hub.auth.principal import Principal
from hub.forwarded import ask, limits_of
from hub.forwarded import complete as complete_on

if TYPE_CHECKING:
    from hub.hub import Hub

Reference = types.PromptReference | types.ResourceTemplateReference
_SHOWN = 120
"""Longest part of a caller's name or URI repeated in an error message."""


async def forward_completion(
    hub: Hub, ref: Reference, argument: dict[str, str], context: dict[str, str] | None, principal: Principal,
    progress: ProgressFnT | None = None,
) -> types.CompleteResult:
    """Complete `argument` (`{"name", "value"}`) for `principal` at the server behind `ref` (its progress to
    `progress`)."""
    await hub.await_first_listing()  # before any list answer, wait (bounded) for servers still connecting
    server, downstream_ref = _resolve(hub, ref, principal)

    async def complete(client: Client, reported: ProgressFnT | None) -> types.CompleteResult:
        if client.server_capabilities.completions is None:
            return types.CompleteResult(completion=types.Completion(values=[]))
        return await complete_on(client, downstream_ref, argument, context, reported)

    # admitted as a tool call is: rate limit and bulkhead slot (`hub.forwarded.admitted`); IDEs send these per keystroke
    return await ask(hub.config, hub.downstreams[server], principal, "completion/complete", complete, progress,
                     limits=limits_of(hub))


def _resolve(hub: Hub, ref: Reference, principal: Principal) -> tuple[str, Any]:
    """(server, the reference as that server names it), or INVALID_PARAMS as for an unknown name."""
    if isinstance(ref, types.PromptReference):
        target = hub.catalog.resolve_prompt(ref.name)
        if target is None or not hub.access.may_read(principal, target[0]):
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {_shown(ref.name)}")
        return target[0], ref.model_copy(update={"name": target[1]})
    visible = {t.uri_template for t in hub.visible_resource_templates(principal)}
    visible.update(str(r.uri) for r in hub.visible_resources(principal))
    target = hub.catalog.resolve_uri(ref.uri) if ref.uri in visible else None
    if target is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown resource template: {_shown(ref.uri)}")
    return target[0], ref.model_copy(update={"uri": target[1]})


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
