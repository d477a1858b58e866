"""How clients reach the hub: stdio, Streamable HTTP (both protocol eras) and legacy SSE.

HTTP binds to 127.0.0.1 by default and checks `Host` and `Origin` against allow-lists
(DNS-rebinding protection). `--transport http` serves Streamable HTTP at `/mcp` and, for older
clients, legacy SSE at `/sse` + `/messages/`; `--transport sse` serves only the legacy pair.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import anyio
from prometheus_client import CONTENT_TYPE_LATEST
import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.auth.scopes import grants
from hub.frontends.http.direct_routes import DirectRoutes
from hub.frontends.http.http_calls import HttpToolCalls
from hub.frontends.http.http_guard import HttpGuard
from hub.frontends.http.http_protocol import hub_http_protocol
from hub.frontends.http.http_sessions import sse_endpoint
from hub.frontends.http.own_streams import StreamOpenings, stream_probe
from hub.frontends.http.resumable import EventBudget, LastEventGate, with_event_stores
from hub.frontends.http.splice import SpliceLifted
from hub.hub import Hub
from hub.store.health import store_health
from hub.cluster.sessions import session_manager
from hub.session_ledger import SessionLedger
from hub.webhooks import HubWebhooks, with_webhook_lifespan
from hub.frontends.server import HubServer
from hub.profiles.http import PinGate, profile_routes, with_managers

logger = logging.getLogger("hub.transport")

UpstreamTransport = Literal["stdio", "http", "sse"]


def security_settings(hub: Hub, host: str) -> TransportSecuritySettings:
    """The Host/Origin allow-lists. The origin of `hub.auth.resource_url` (the hub's public URL) is
    allowed too: it is the hub's own origin, so a browser's same-origin POST to the console behind a TLS
    ingress is not refused (outside review console26 #3: `403 Invalid Origin header` at sign-in)."""
    hosts = list(hub.config.hub.allowed_hosts)
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{host}:*")
    origins = list(hub.config.hub.allowed_origins)
    if (public := public_origin(hub.config.hub.auth.resource_url)) is not None and public not in origins:
        origins.append(public)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def public_origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of a configured public URL (no user info), or None."""
    from urllib.parse import urlsplit

    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def health_response(hub: Hub, detailed: bool = True, sessions: dict[str, int] | None = None,
                    webhooks: HubWebhooks | None = None) -> JSONResponse:
    """`GET /healthz`: 200 while the hub can serve (some server up, or none configured), else 503;
    the body names the servers that are degraded or down, and counts open HTTP sessions. With
    auth on, only callers holding `hub:admin` see these details."""
    servers = hub.status()
    degraded = sorted(name for name, s in servers.items() if s["health"] != "connected")
    up = [name for name, s in servers.items() if s["health"] != "down"]
    limiter = hub.rate_limits.health()  # None unless the limiter's store is shared (Redis)
    limiter_down = limiter is not None and limiter["state"] != "ok"
    store = store_health(hub)  # keys and audit: this replica's view of SQLite / PostgreSQL
    store_down = store.get("state", "ok") != "ok" or not store.get("writing", True)
    body: dict[str, Any] = {"status": "degraded" if degraded or limiter_down or store_down else "ok"}
    if detailed:
        body.update(degraded=degraded, tools=len(hub.catalog.tools()), servers=servers)
        if limiter is not None:
            body["rate_limiter"] = limiter
        if hub.cluster_notify is not None:  # best effort: shown, never degrading (hub.cluster.notify)
            body["notifications"] = hub.cluster_notify.health()
        body["store"] = store
        if sessions is not None:
            body["sessions"] = sessions
        if webhooks is not None and (intakes := webhooks.health()):
            body["webhooks"] = intakes  # per in-process domain; shown, never degrading (hub.webhooks)
    return JSONResponse(body, status_code=200 if up or not servers else 503)


def build_http_app(hub: Hub, server: HubServer, transport: UpstreamTransport, host: str, port: int) -> ASGIApp:
    """The ASGI app for `http` (Streamable HTTP + legacy SSE) or `sse` (legacy SSE only).

    Every route sits behind `HttpGuard` (Host/Origin, body size; the protocol keeps the deadlines); sessions of both
    kinds are held per principal in one `SessionLedger` (`hub.frontends.http.http_sessions`)."""
    security = security_settings(hub, host)
    limits = hub.config.hub.http
    from hub.auth.http import http_auth  # JOSE/JWT code only an HTTP hub needs (keeps stdio start lean)

    auth = http_auth(hub, host, port)
    ledger = SessionLedger(limits.max_sessions_per_principal, limits.max_sessions)
    ledger.on_end.append(hub.client_gone)  # its per-client downstream sessions close with it
    protect: Callable[[ASGIApp], ASGIApp] = auth.require if auth is not None else (lambda app: app)

    async def health(request: Request) -> Response:
        return health_response(hub, detailed=auth is None or _may_see_details(request), sessions=ledger.counts(),
                               webhooks=webhooks)

    async def metrics(request: Request) -> Response:
        access = hub.config.hub.metrics.access
        client_host = request.client.host if request.client else ""
        allowed = (access == "loopback" and client_host in ("127.0.0.1", "::1")) or (
            access == "scope" and _has_scope(request, "hub:metrics")
        )
        if not allowed:
            return JSONResponse({"error": "metrics are not available to this caller (see hub.metrics.access)"}, 403)
        return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    sse = SseServerTransport("/messages/", security_settings=security, max_request_body_size=limits.max_body_bytes)
    routes: list[Route | Mount] = [
        Route("/healthz", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/sse", RawASGI(protect(PinGate(sse_endpoint(sse, server, ledger), None))), methods=["GET"]),
        Mount("/messages/", app=protect(PinGate(sse.handle_post_message, None))),
        *(auth.metadata_routes() if auth else []),
    ]
    lifespan: Any = None
    endpoints: dict[str, ASGIApp] = {}  # the MCP endpoints' exact paths, for `DirectRoutes`
    if transport == "http":
        # Sealed, portable session ids when hub.cluster.session_secrets is set (hub.cluster.sessions).
        budget = EventBudget()  # events kept for resumption, over every session (`hub.frontends.http.resumable`)

        def make_manager(mcp_server: HubServer) -> Any:
            made = with_event_stores(session_manager(
                mcp_server, ledger, hub.config.hub.cluster, security_settings=security,
                session_idle_timeout=limits.session_idle_timeout_s, max_request_body_size=limits.max_body_bytes,
            ), budget)
            hub.request_relay.roots.watch_streams(stream_probe(made))  # out-of-call asks only on an open GET stream
            return made

        def mcp_app(manager: Any) -> ASGIApp:
            """The SDK's Streamable HTTP app (its sessions' streams resumable: `LastEventGate`), with plain
            tools/call answered first (`http_calls`) unless `hub.fast_calls` is off."""
            # Big results' strings as sent (not the fast path's).
            app = SpliceLifted(StreamOpenings(LastEventGate(StreamableHTTPASGIApp(manager), manager),
                                              hub.request_relay.roots_notices.client_stream_opened))
            return HttpToolCalls(app, hub, manager) if hub.config.hub.fast_calls else app

        manager = make_manager(server)
        endpoints["/mcp"] = protect(PinGate(mcp_app(manager), None))
        # /mcp/<profile>: one MCP server and session manager per configured profile (`hub.profiles.http`).
        profiled, managers = profile_routes(hub, make_manager, mcp_app, protect)
        endpoints.update((path, app) for path, app in profiled if not path.endswith("}"))
        routes[0:0] = [Route("/mcp", RawASGI(endpoints["/mcp"])), *(Route(path, RawASGI(app)) for path, app in profiled)]
        lifespan = with_managers(managers, lambda app: manager.run())
    webhooks = HubWebhooks(hub)  # POST /webhooks/<namespace>/<provider> for in-process domains (hub.webhooks)
    routes.append(webhooks.route())
    from hub.admin import admin_app  # Jinja2 and the console load only for an HTTP hub (docs/console.md)

    console = admin_app(hub, auth)
    routes.append(Mount("/admin", app=console))
    lifespan = closing_at_stop(with_webhook_lifespan(webhooks, lifespan), console.aclose)
    if auth is not None:  # sessions and streams end once their credential is revoked or expires
        from hub.auth.credential_watch import CredentialWatch

        watch = CredentialWatch(auth.verifier.keys, hub.config.hub.store.key_cache_s)
        ledger.watch = hub.subscriptions.watch = watch
        auth.verifier.on_verified = watch.seen  # a refreshed JWT keeps its holder's streams
        lifespan = watch.lifespan(lifespan)
    middleware = auth.middleware() if auth else []
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    # Big results' strings are spliced into what the SDK writes: every route Starlette serves (the legacy
    # SSE stream among them), and the SDK's own path behind the MCP endpoints (`mcp_app`); the fast
    # path writes whole answers itself.
    return HttpGuard(DirectRoutes(app, SpliceLifted(app), endpoints, middleware), security, limits.max_body_bytes,
                     read_only=lambda name: bool((route := hub.catalog.resolve_tool(name)) and route.read_only),
                     output_schema=lambda name: route.tool.output_schema if (route := hub.catalog.resolve_tool(name)) else None)


def closing_at_stop(inner: Any, aclose: Callable[[], Awaitable[None]]) -> Any:
    """A Starlette lifespan running `inner`, then `aclose()` when the app stops (however `inner` ends)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            async with inner(app):
                yield
        finally:
            await aclose()

    return lifespan


class RawASGI:
    """Marks an ASGI callable for Starlette's `Route`, which would wrap a plain function as a
    request/response endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _has_scope(request: Request, scope: str) -> bool:
    """Whether the request's credential grants `scope`, by the hub's one rule (`hub.auth.scopes.grants`:
    `*`, `<ns>:*`, and admin ⊇ write ⊇ read), as for tools and the console."""
    user = request.scope.get("user")
    scopes = getattr(getattr(user, "access_token", None), "scopes", None) or []
    return grants(scopes, scope)


def _may_see_details(request: Request) -> bool:
    return _has_scope(request, "hub:admin")


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn. IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted
    connections only when the listening socket says TCP, and without it Nagle + delayed ACK hold a
    response written in two parts for ~40 ms."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal this process was started ignoring (SIGINT under
    `nohup` or `cmd &` in a script) stays ignored while it serves (uvicorn takes both for itself), a
    stop signal it takes arms the hub's watchdog (`hub.signals.uvicorn_took`), and a stop drains:
    uvicorn closes the listener, the guard then ends long-lived streams at once (`HttpGuard.stop`:
    their clients reconnect elsewhere rather than hold the drain), and calls in flight get
    `hub.http.drain_s` to finish (uvicorn's graceful wait; it ends as soon as they have) before those
    still running are cancelled and answered for what they are (`hub.frontends.http.http_guard`)."""

    def __init__(self, config: uvicorn.Config, guard: HttpGuard | None = None) -> None:
        super().__init__(config)
        self.guard = guard

    def handle_exit(self, sig: int, frame: Any) -> None:
        from hub.signals import uvicorn_took

        uvicorn_took(sig, self.config.timeout_graceful_shutdown or 0.0)  # a second stop exits at once
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn closes its listeners before its first await: the streams end after that, so a client
        # reconnecting at once reaches another replica, not this one's still-open listener.
        if self.guard is not None:
            asyncio.get_running_loop().call_soon(self._end_streams)
        await super().shutdown(sockets)

    def _end_streams(self) -> None:
        assert self.guard is not None
        ended, calls = self.guard.stop(), self.guard.in_flight()
        logger.info("stopping: %d open stream(s) ended; waiting up to %g s (hub.http.drain_s) for %d request(s) in "
                    "flight", ended, self.config.timeout_graceful_shutdown or 0.0, max(0, calls - ended))

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        ignored = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is signal.SIG_IGN]
        with super().capture_signals():
            if threading.current_thread() is threading.main_thread():
                for sig in ignored:
                    signal.signal(sig, signal.SIG_IGN)
            yield


async def serve_http(hub: Hub, server: HubServer, transport: UpstreamTransport, host: str, port: int) -> None:
    """Run uvicorn until interrupted; the bound address is logged (port 0 picks a free one)."""
    # Bind first, so a port of 0 is resolved before the app (and its resource URL) is built.
    sock = bind_listener(host, port)
    port = sock.getsockname()[1]
    app = build_http_app(hub, server, transport, host, port)
    # log_config=None: uvicorn's records reach the hub's one masked stderr handler (`hub.logsetup`).
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, log_config=None,
                            http=hub_http_protocol(hub.config.hub.http.body_timeout_s),
                            timeout_keep_alive=hub.config.hub.http.idle_connection_s,
                            timeout_graceful_shutdown=hub.config.hub.http.drain_s)
    web = _Server(config, app if isinstance(app, HttpGuard) else None)
    # sse-starlette (the SDK's event streams) ends every event stream of the process as soon as uvicorn
    # sees a stop signal — the answer streams of calls in flight too, which then never got their answer.
    # The guard ends the long-lived streams itself; a call's stream ends with its call, or the drain.
    from sse_starlette.sse import AppStatus

    AppStatus.disable_automatic_graceful_drain()

    async def announce() -> None:
        while not web.started:
            await anyio.sleep(0.02)
        for sock in [s for srv in web.servers for s in srv.sockets]:
            bound_host, bound_port = sock.getsockname()[:2]
            path = "/sse" if transport == "sse" else "/mcp"
            logger.info("listening on http://%s:%d%s", bound_host, bound_port, path)
            print(f"mcp-hub listening on http://{bound_host}:{bound_port}{path}", file=sys.stderr, flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await web.serve(sockets=[sock])
        tg.cancel_scope.cancel()
