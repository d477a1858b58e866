"""How clients reach the hub: stdio, Streamable HTTP (both protocol eras) and legacy SSE.

HTTP binds to 127.0.0.1 by default and checks `Host` and `Origin` against allow-lists
(DNS-rebinding protection). `--transport http` serves Streamable HTTP at `/mcp` and, for older
clients, legacy SSE at `/sse` + `/messages/`; `--transport sse` serves only the legacy pair.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import anyio
import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from hub.hub import Hub
from hub.server import HubServer

logger = logging.getLogger("hub.transport")

UpstreamTransport = Literal["stdio", "http", "sse"]


async def serve_stdio(server: HubServer) -> None:
    """Serve one client on this process's stdin/stdout until stdin closes."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def security_settings(hub: Hub, host: str) -> TransportSecuritySettings:
    hosts = list(hub.config.hub.allowed_hosts)
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{host}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=list(hub.config.hub.allowed_origins),
    )


def health_response(hub: Hub) -> JSONResponse:
    """`GET /healthz`: 200 while the hub can serve (some server up, or none configured), else 503;
    the body names the servers that are degraded or down."""
    servers = hub.status()
    degraded = sorted(name for name, s in servers.items() if s["health"] != "connected")
    up = [name for name, s in servers.items() if s["health"] != "down"]
    body = {
        "status": "degraded" if degraded else "ok",
        "degraded": degraded,
        "tools": len(hub.catalog.tools()),
        "servers": servers,
    }
    return JSONResponse(body, status_code=200 if up or not servers else 503)


def build_http_app(hub: Hub, server: HubServer, transport: UpstreamTransport, host: str) -> Starlette:
    """The ASGI app for `http` (Streamable HTTP + legacy SSE) or `sse` (legacy SSE only)."""
    security = security_settings(hub, host)

    async def health(request: Request) -> Response:
        return health_response(hub)

    sse = SseServerTransport("/messages/", security_settings=security)

    async def sse_endpoint(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):  # noqa: SLF001
            await server.run(read, write, server.create_initialization_options())
        return Response()

    legacy_routes = [Route("/sse", sse_endpoint, methods=["GET"]), Mount("/messages/", app=sse.handle_post_message)]
    extra = [Route("/healthz", health, methods=["GET"]), *legacy_routes]
    if transport == "sse":
        return Starlette(routes=extra)
    return server.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=security,
        host=host,
        custom_starlette_routes=extra,
    )


async def serve_http(hub: Hub, server: HubServer, transport: UpstreamTransport, host: str, port: int) -> None:
    """Run uvicorn until interrupted; the bound address is logged (port 0 picks a free one)."""
    app = build_http_app(hub, server, transport, host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    web = uvicorn.Server(config)

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
        await web.serve()
        tg.cancel_scope.cancel()
