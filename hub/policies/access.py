"""Access decisions: which tools, resources and prompts a principal may see and use.

What a caller may not use is hidden from its lists and refused exactly like an unknown name, so
the catalog never leaks what exists behind a missing scope.
"""

from __future__ import annotations

import functools
import os

from hub.auth.principal import Principal
from hub.auth.scope_syntax import parse_scopes
from hub.auth.scopes import missing_scopes, required_scopes, scope_prefix
from hub.catalog.catalog import ToolRoute
from hub.config import HubConfig


class AccessControl:
    def __init__(self, config: HubConfig) -> None:
        self._servers = {s.name: s for s in config.servers}
        self._admin_for_destructive = config.hub.auth.admin_for_destructive
        auth = config.hub.auth
        name = os.environ.get("MCP_HUB_PRINCIPAL") or auth.stdio_principal
        # `$MCP_HUB_SCOPES` by the one scope rule (commas as spaces: `hub.auth.scope_syntax`); `mcp-hub serve`
        # has refused a malformed or empty value before the hub is built (`hub.cli_run.stdio_scopes_env`).
        scopes = parse_scopes(env) if (env := os.environ.get("MCP_HUB_SCOPES")) else auth.stdio_scopes
        self.local = Principal(name, tuple(scopes), "local")
        """Who calls over stdio (or over HTTP with auth off): config, overridden by $MCP_HUB_PRINCIPAL /
        $MCP_HUB_SCOPES so a Claude Desktop entry can run the hub with fewer rights."""
        self._needed: dict[int, tuple[ToolRoute, tuple[str, ...]]] = {}
        """Each route's required scopes, worked out once per route object (routes are replaced, not
        changed, when a server's listing changes)."""

    def tool_scopes(self, route: ToolRoute) -> tuple[str, ...]:
        return required_scopes(route, self._servers[route.server], self._admin_for_destructive)

    def may_use_tool(self, principal: Principal, route: ToolRoute) -> bool:
        known = self._needed.get(id(route))
        if known is None or known[0] is not route:
            if len(self._needed) > 10_000:
                self._needed.clear()
            known = self._needed[id(route)] = (route, self.tool_scopes(route))
        return _covers(tuple(principal.scopes), known[1])

    def may_read(self, principal: Principal, server: str) -> bool:
        """Resources and prompts of a server need `<namespace>:read`."""
        return not missing_scopes(principal.scopes, [f"{scope_prefix(self._servers[server])}:read"])


@functools.lru_cache(maxsize=4096)
def _covers(granted: tuple[str, ...], needed: tuple[str, ...]) -> bool:
    """Whether `granted` covers every scope in `needed` (asked on every call: remembered)."""
    return not missing_scopes(granted, needed)
