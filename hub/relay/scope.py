"""Whether a principal can see a server at all: the rule every relay toward a client applies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.auth.principal import Principal

if TYPE_CHECKING:
    from hub.hub import Hub


def may_see_server(hub: Hub, principal: Principal, server: str) -> bool:
    """True when `principal` may read the server's resources/prompts or use one of its tools — what
    makes the server visible in that client's lists. Nothing a server sends reaches anyone else."""
    if server not in hub.downstreams:
        return False
    if hub.access.may_read(principal, server):
        return True
    return any(route.server == server and hub.access.may_use_tool(principal, route) for route in hub.catalog.routes())
