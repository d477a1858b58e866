"""CORS for the MCP endpoints, for exactly the origins `HttpGuard`'s Origin check lets through.

A browser MCP client (the Inspector's web UI, a web agent) on an allowed origin (`hub.allowed_origins`,
`http://localhost:*` by default) must see its preflight answered and read `Mcp-Session-Id` and
`WWW-Authenticate` on the answers. The guard refuses a foreign origin (403) before anything here runs,
so every origin that reaches `preflight` or `with_cors` is allowed: its value is echoed (never `*`),
without `Access-Control-Allow-Credentials` (clients send a bearer token, not cookies), with
`Vary: Origin`. Only the MCP paths (`/mcp`, `/mcp/<profile>`, legacy `/sse` and `/messages/`) get it;
the console (`/admin`) stays same-origin, and the OAuth metadata route answers its own CORS (the SDK's,
`*`: a public document). A request without an `Origin` header never reaches this module.
"""

from __future__ import annotations

from starlette.types import Message, Scope, Send

ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = ("content-type", "accept", "authorization", "mcp-session-id", "mcp-protocol-version",
                 "last-event-id", "mcp-method", "mcp-name")
"""Request headers MCP clients send (both eras: `Mcp-Method` / `Mcp-Name` are 2026-07-28's routing
headers); `Mcp-Param-*` (a tool's `x-mcp-header` arguments) are allowed by prefix."""
PARAM_PREFIX = "mcp-param-"
EXPOSE_HEADERS = b"mcp-session-id, mcp-protocol-version, www-authenticate, retry-after"
"""Answer headers clients read: the session id, the era, the auth challenge (`resource_metadata`), and
how long to wait after a 429/503."""
MAX_AGE = b"600"

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
_ALLOWED = frozenset(ALLOW_HEADERS)


def is_cors_path(path: str) -> bool:
    """Whether `path` is one of the MCP endpoints browsers may call cross-origin."""
    return path == "/mcp" or path.startswith(("/mcp/", "/messages/")) or path == "/sse"


def is_preflight(scope: Scope) -> bool:
    """An `OPTIONS` carrying `Access-Control-Request-Method` (the caller has checked `Origin`)."""
    return scope["method"] == "OPTIONS" and any(name == b"access-control-request-method" for name, _ in scope["headers"])


async def preflight(scope: Scope, send: Send, origin: str) -> None:
    """204 allowing `origin` the MCP methods and the headers it asked for among those clients send."""
    asked = b""
    for name, value in scope["headers"]:
        if name == b"access-control-request-headers":
            asked = value
            break
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-allow-headers", _allow_headers(asked.decode("latin-1"))),
        (b"access-control-max-age", MAX_AGE),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _allow_headers(asked: str) -> bytes:
    """The fixed list, plus the `Mcp-Param-*` headers asked for (only well-formed header names)."""
    extra = [name for name in (part.strip().lower() for part in asked.split(","))
             if name.startswith(PARAM_PREFIX) and name not in _ALLOWED and len(name) <= 128 and set(name) <= _TOKEN]
    return ", ".join((*ALLOW_HEADERS, *dict.fromkeys(extra))).encode("latin-1")


def with_cors(send: Send, origin: str) -> Send:
    """`send` adding `Access-Control-Allow-Origin: origin`, the exposed headers and `Vary: Origin` to
    the answer's head, unless the app answered CORS itself."""
    allow = origin.encode("latin-1")

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"access-control-allow-origin" for name, _ in headers):
                headers += [(b"access-control-allow-origin", allow), (b"access-control-expose-headers", EXPOSE_HEADERS),
                            (b"vary", b"Origin")]
                message = {**message, "headers": headers}
        await send(message)

    return cors_send
