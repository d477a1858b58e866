"""Per-tool scopes: `<namespace>:read` for read-only tools, `<namespace>:write` for others,
`<namespace>:admin` for destructive ones when configured; config overrides per tool glob.

Granted scopes imply lesser ones (`admin` ⊇ `write` ⊇ `read`); `*` grants everything and
`<namespace>:*` everything in one namespace.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hub.config import ServerConfig

if TYPE_CHECKING:  # a type only: a real import closed a circle (catalog → connection → caller_channel → scopes)
    from hub.catalog.catalog import ToolRoute

_LEVELS = {"read": 0, "write": 1, "admin": 2}


def scope_prefix(config: ServerConfig) -> str:
    return config.namespace or config.name


def required_scopes(route: ToolRoute, config: ServerConfig, admin_for_destructive: bool) -> tuple[str, ...]:
    """The scopes a caller needs (all of them) to see and call this tool."""
    for pattern, scopes in config.scopes.items():
        if fnmatch.fnmatchcase(route.original, pattern):
            return tuple(scopes)
    prefix = scope_prefix(config)
    hints = route.tool.annotations
    if route.read_only:
        return (f"{prefix}:read",)
    if admin_for_destructive and (hints is None or hints.destructive_hint is not False):
        # Per the spec, destructiveHint defaults to true for tools that are not read-only.
        return (f"{prefix}:admin",)
    return (f"{prefix}:write",)


def grants(granted: Iterable[str], needed: str) -> bool:
    """Whether a set of granted scopes covers one needed scope."""
    granted = set(granted)
    if "*" in granted or needed in granted:
        return True
    namespace, _, level = needed.rpartition(":")
    if not namespace:
        return False
    if f"{namespace}:*" in granted:
        return True
    if level in _LEVELS:
        return any(f"{namespace}:{higher}" in granted for higher, rank in _LEVELS.items() if rank > _LEVELS[level])
    return False


def missing_scopes(granted: Iterable[str], needed: Iterable[str]) -> list[str]:
    granted = list(granted)
    return [scope for scope in needed if not grants(granted, scope)]
