"""Profiles over HTTP: `/mcp/<profile>` routes, and the gate that keeps a pinned key on its profiles.

Decisions: a caller whose key or token holds `profile:<name>` scopes may use only those profiles'
URLs; on another profile's URL, or on `/mcp` and the legacy SSE pair, it gets 403 `forbidden` with
a message naming the URLs it may use. `/mcp/<name>` for a name the config does not define is 404
with the defined names listed. Without auth there is no caller identity and nothing is pinned.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.profiles import pinned_profiles, profile_view

if TYPE_CHECKING:
    from hub.hub import Hub

Manager = Any
"""A session manager (`hub.cluster.sessions.session_manager`): an ASGI-able `run()` context."""


def _scopes(scope: Scope) -> tuple[str, ...]:
    token = getattr(scope.get("user"), "access_token", None)
    return tuple(getattr(token, "scopes", None) or ())


async def _json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class PinGate:
    """Refuses (403) a caller pinned to other profiles than `profile` (None: the hub-wide endpoints)."""

    def __init__(self, app: ASGIApp, profile: str | None) -> None:
        self.app, self.profile = app, profile

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pins = pinned_profiles(_scopes(scope)) if scope["type"] == "http" else frozenset()
        if pins and self.profile not in pins:
            where = "the hub-wide endpoint" if self.profile is None else f"profile {self.profile!r}"
            urls = ", ".join(f"/mcp/{p}" for p in sorted(pins))
            await _json(send, 403, {"error": "forbidden", "error_description":
                                    f"this credential is pinned to {urls} and may not use {where}; connect to {urls}"})
            return
        await self.app(scope, receive, send)


def profile_routes(hub: Hub, make_manager: Callable[[Any], Manager], mcp_app: Callable[[Manager], ASGIApp],
                   protect: Callable[[ASGIApp], ASGIApp]) -> tuple[list[tuple[str, ASGIApp]], list[Manager]]:
    """`(path, ASGI app)` for `/mcp/<name>` per configured profile (each its own MCP server and session
    manager), then the 404 for any other name; and the managers whose `run()` the app's lifespan holds."""
    from hub.frontends.server import build_server

    routes: list[tuple[str, ASGIApp]] = []
    managers: list[Manager] = []
    for name in sorted(hub.config.profiles):
        manager = make_manager(build_server(hub, profile_view(hub, name)))
        managers.append(manager)
        routes.append((f"/mcp/{name}", protect(PinGate(mcp_app(manager), name))))
    defined = sorted(hub.config.profiles)

    async def unknown(scope: Scope, receive: Receive, send: Send) -> None:
        name = scope.get("path_params", {}).get("profile", "")
        listed = ", ".join(defined) if defined else "none (add a \"profiles\" block to the hub's config)"
        await _json(send, 404, {"error": "not_found",
                                "error_description": f"unknown profile {name[:64]!r}; defined profiles: {listed}"})

    routes.append(("/mcp/{profile}", protect(unknown)))  # the defined names only to an authenticated caller
    return routes, managers


def with_managers(managers: list[Manager], lifespan: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """`lifespan` that also runs each profile's session manager."""
    if not managers:
        return lifespan

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for manager in managers:
                await stack.enter_async_context(manager.run())
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            yield

    return run
