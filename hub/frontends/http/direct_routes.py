"""The MCP endpoints' POSTs straight to their app, past Starlette's router.

Every MCP request is a POST to `/mcp` (or `/mcp/<profile>`). Through Starlette it crossed five
layers that decide nothing for it — the error and exception middleware, the router matching its
path against each route, the route, the endpoint wrapper — about 0.1 ms of a relayed call's
~0.6 ms in the hub (docs/performance.md, "HTTP front, round 2"). `DirectRoutes` sends such a POST
to the same endpoint app Starlette would reach, under the same user middleware (authentication),
built the same way; everything else (other paths and methods, lifespan) goes to Starlette.

What the skipped layers would have done, and where it happens instead: an exception the endpoint
raises before answering becomes a 500 from uvicorn, as Starlette's error middleware would answer
it (both log it); the exception middleware only handles `HTTPException`, which no MCP endpoint
raises (the SDK's transports and the hub's layers answer their errors themselves); the router's
match is the exact path. `HttpGuard` (Host/Origin, body limits) stays outside both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send


class DirectRoutes:
    """ASGI: a POST to one of `endpoints` (exact path → endpoint app) goes to that app under
    `middleware`; anything else to `rest` (`starlette`, possibly wrapped)."""

    def __init__(self, starlette: Starlette, rest: ASGIApp, endpoints: Mapping[str, ASGIApp],
                 middleware: Sequence[Middleware]) -> None:
        self._starlette = starlette
        self._rest = rest
        self._endpoints = {path: _under(endpoint, middleware) for path, endpoint in endpoints.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self._endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self._starlette  # as Starlette sets it for what it routes
                await endpoint(scope, receive, send)
                return
        await self._rest(scope, receive, send)


def _under(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """`app` wrapped in `middleware` as Starlette's `build_middleware_stack` wraps its router."""
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app
