"""Which headers decide how the HTTP front's fast path (`hub.frontends.http.http_calls`) may serve a
request, read once and judged as the SDK's Streamable HTTP transport judges them: a request the SDK
would refuse or read otherwise is left to the SDK."""

from __future__ import annotations

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, check_accept_headers
from starlette.types import Scope

SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode()
_WATCHED = frozenset({b"content-type", b"accept", SESSION_HEADER, b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
"""Headers that decide how a request is served: a request holding one twice is left to the SDK."""


class Heads:
    """The headers the fast path looks at, read in one pass, judged as the SDK judges them: `usable` is
    False when any of them appears twice (the SDK reads the first copy, or refuses the request) or
    when the SDK would refuse the body's type or the `Accept` header."""

    __slots__ = ("session_id", "usable", "version")

    def __init__(self, scope: Scope) -> None:
        seen: dict[bytes, str] = {}
        twice = False
        for name, value in scope["headers"]:
            if name in _WATCHED:
                twice = twice or name in seen
                seen[name] = value.decode("latin-1")
        self.version = seen.get(b"mcp-protocol-version")
        self.session_id = seen.get(SESSION_HEADER)
        content_type = seen.get(b"content-type", "")
        # The transport security check (case-insensitive prefix) and the 2025 transport's own (an exact part).
        json_body = (content_type.lower().startswith("application/json")
                     and any(part.strip() == "application/json" for part in content_type.split(";")[0].split(",")))
        self.usable = not twice and json_body and _accepts_json_and_sse(seen.get(b"accept", ""))


_ACCEPTS: dict[str, bool] = {}
"""`Accept` value → whether the SDK's parser reads it as both JSON and SSE (clients send a handful of values)."""


def _accepts_json_and_sse(accept: str) -> bool:
    known = _ACCEPTS.get(accept)
    if known is None:
        has_json, has_sse = check_accept_headers(_AcceptOnly(accept))  # the SDK's parser, wildcards included
        if len(_ACCEPTS) >= 256:
            _ACCEPTS.clear()
        known = _ACCEPTS[accept] = has_json and has_sse
    return known


class _AcceptOnly:
    """What `check_accept_headers` reads of a request."""

    __slots__ = ("headers",)

    def __init__(self, accept: str) -> None:
        self.headers = {"accept": accept}
