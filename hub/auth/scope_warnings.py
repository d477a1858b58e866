"""Scopes that are well written (`hub.auth.scope_syntax`) yet grant nothing with this config: an action the
hub has no level for (`w:reed`, `w:READ`: scopes are case-sensitive), or a namespace no enabled server has.

One judgement wherever scopes are given: `keys create` warns of a new key's, and `serve`, `tools`, `call`
and `check` warn of the stdio scopes (`$MCP_HUB_SCOPES` or `hub.auth.stdio_scopes`), which used to give a
stdio hub 0 tools with nothing said (outside review recheck21h #7). Warned, never refused: a key may be
for servers configured later or on another replica, and a narrowed stdio hub is a choice.
"""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config import HubConfig

KNOWN_LEVELS = frozenset({"read", "write", "admin", "*", "sensitive"})
"""What the hub's scopes end in (`hub.auth.scopes`), and `sensitive`, which domains check (`hris:sensitive`)."""


def scope_warnings(config: HubConfig, scopes: list[str]) -> list[str]:
    """Each of `scopes` that no server in `config` can grant anything for, said with a likely fix (outside
    review newuser19 #10)."""
    from hub.auth.scopes import scope_prefix

    custom = {scope for server in config.servers for listed in server.scopes.values() for scope in listed}
    namespaces = {scope_prefix(server) for server in config.enabled_servers()} | {"hub"}
    namespaces |= {scope.rpartition(":")[0] for scope in custom}
    warnings: list[str] = []
    for scope in scopes:
        namespace, _, level = scope.rpartition(":")
        if scope == "*" or scope in custom:
            continue
        if namespace == "profile":
            if level not in config.profiles:
                known = ", ".join(sorted(config.profiles)) or "none in this config"
                warnings.append(f"{scope!r} pins the key to profile {level!r}, which the config does not define "
                                f"(profiles: {known})")
            continue
        if level not in KNOWN_LEVELS:
            warnings.append(f"{scope!r} names no action the hub grants: {_level_hint(namespace, level)}"
                            "a scope ends in :read, :write, :admin or :*")
        elif namespace and namespace not in namespaces:
            close = difflib.get_close_matches(namespace, sorted(namespaces), n=1)
            hint = f"did you mean '{close[0]}:{level}'? " if close else ""
            warnings.append(f"{scope!r}: no enabled server in the config has namespace {namespace!r}, so it grants "
                            f"nothing yet; {hint}namespaces: {', '.join(sorted(namespaces - {'hub'})) or 'none'}")
    return warnings


def _level_hint(namespace: str, level: str) -> str:
    if level.lower() in KNOWN_LEVELS:
        return f"scopes are case-sensitive: did you mean '{namespace}:{level.lower()}'? "
    close = difflib.get_close_matches(level.lower(), sorted(KNOWN_LEVELS - {"*"}), n=1)
    return f"did you mean '{namespace}:{close[0]}'? " if close else ""


def stdio_scope_warnings(config: HubConfig) -> list[str]:
    """`scope_warnings` for the scopes a stdio hub (or HTTP with auth off) runs with, each naming where the
    scope was set and what it costs: `$MCP_HUB_SCOPES` when set (already checked by
    `hub.cli_run.stdio_scopes_env`), else `hub.auth.stdio_scopes`."""
    raw = os.environ.get("MCP_HUB_SCOPES")
    source, scopes = (("$MCP_HUB_SCOPES", raw.split()) if raw is not None
                      else ("hub.auth.stdio_scopes", list(config.hub.auth.stdio_scopes)))
    return [f"{source}: {warning}; the local caller gets no tool from it" for warning in scope_warnings(config, scopes)]
