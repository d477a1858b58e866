"""Exposed names: `<namespace>__<name>` within a length budget, and namespaced resource URIs.

Anthropic's API accepts tool names matching `^[a-zA-Z0-9_-]{1,64}$` and Claude Code prepends
`mcp__<server>__`, so every name the hub exposes is kept inside a configurable budget. A name
that does not fit (too long, or with characters such as `.` that MCP allows but the API does
not) is rewritten deterministically: sanitized, truncated, and suffixed with a short hash of
the *original* (namespace, name) pair, so it is stable across restarts and never depends on
string splitting at call time — the catalog keeps the reverse lookup table.
"""

from __future__ import annotations

import hashlib
import re

SEPARATOR = "__"
EXPOSED_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_HASH_LEN = 8

RESOURCE_SCHEME = "mcphub"
"""Namespaced resource URIs look like `mcphub://<namespace>/<original uri>` (but `UI_SCHEME`'s)."""


def exposed_name(namespace: str, name: str, budget: int = 64) -> str:
    """The name a downstream tool or prompt is exposed under (deterministic, within `budget`)."""
    joined = f"{namespace}{SEPARATOR}{name}" if namespace else name
    if len(joined) <= budget and EXPOSED_NAME_RE.match(joined):
        return joined
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()[:_HASH_LEN]
    sanitized = _INVALID_CHARS.sub("_", joined)
    head = sanitized[: budget - _HASH_LEN - 1].rstrip("_")
    return f"{head}_{digest}"


UI_SCHEME = "ui://"
"""MCP Apps' resources (`ui://…`, named by a tool's `_meta.ui.resourceUri`): a host renders only that
scheme, so such a URI keeps it and carries the namespace in its authority: `ui://<namespace>__<rest>`."""


def namespaced_uri(namespace: str, uri: str) -> str:
    """The URI (or URI template) a downstream resource is exposed under."""
    if not namespace:
        return uri
    if uri.startswith(UI_SCHEME):
        return f"{UI_SCHEME}{namespace}{SEPARATOR}{uri[len(UI_SCHEME):]}"
    return f"{RESOURCE_SCHEME}://{namespace}/{uri}"


def split_uri(uri: str) -> tuple[str, str] | None:
    """Reverse `namespaced_uri`: `(namespace, original uri)`, or None for an unprefixed URI."""
    if uri.startswith(UI_SCHEME):
        namespace, sep, rest = uri[len(UI_SCHEME):].partition(SEPARATOR)
        return (namespace, UI_SCHEME + rest) if sep and namespace and "/" not in namespace else None
    prefix = f"{RESOURCE_SCHEME}://"
    if not uri.startswith(prefix):
        return None
    namespace, sep, original = uri[len(prefix) :].partition("/")
    if not sep or not namespace:
        return None
    return namespace, original
