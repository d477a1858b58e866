"""A domain server's own HTTP app with its webhook intake: `POST /webhooks/<provider>` beside the
MCP endpoint, and the background processor run for the app's lifetime (its lifespan)."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FAILING = ("error", "resync")
"""Channel states that make `/healthz` say `degraded`: failing, or Graph missed notifications on it."""


def with_webhooks(app: Starlette, server: Any) -> Starlette:
    """Add `server.webhooks`' routes to `app` and run its processor inside `app`'s lifespan
    (a server without an intake is returned unchanged)."""
    intake = getattr(server, "webhooks", None)
    if intake is None:
        return app
    app.router.routes.extend(intake.routes())

    async def healthz(request: Request) -> JSONResponse:
        """Up (200), with the webhook intake's state; `status` is `degraded` while a push channel is failing
        (or needs a resync: Graph missed notifications on it),
        events sit in the dead-letter queue, the event log is unreachable or the processor failed
        (`processor`, with its masked `error` and what to do; not a reason to take the server out of rotation)."""
        state = await intake.status()
        log = state["log"]
        failing = any(c["state"] in FAILING for c in state["channels"]) or "error" in log or log.get("dead", 0) > 0 \
            or state.get("processor") == "failed"
        return JSONResponse({"status": "degraded" if failing else "ok", "webhooks": state})

    app.router.routes.append(Route("/healthz", healthz, methods=["GET"]))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(target: Any) -> AsyncIterator[Any]:
        async with inner(target) as state, intake.running():
            yield state

    app.router.lifespan_context = lifespan
    return app


BODY_TIMEOUT_S = 10.0
"""How long a request's head, then its body, may take to arrive (as the hub's `hub.http.body_timeout_s`);
`$MCP_SERVER_BODY_TIMEOUT_S` sets another."""


IDLE_CONNECTION_S = 65.0
"""An idle kept-alive connection is closed after this long: longer than HTTP clients keep theirs (the hub's
httpx: 5 s), so none sends on a connection being closed (`hub.settings.HttpSettings.idle_connection_s`)."""


async def serve_http(server: Any, transport: str, host: str, port: int) -> None:
    """Serve `server` over Streamable HTTP (`http`) or legacy SSE (`sse`) with its webhooks. The
    webhook routes take no MCP credential, so a request sent a byte a second must not hold a
    connection for ever (outside review, events round 10): the hub's HTTP protocol and its deadlines
    (a head or body not whole within `BODY_TIMEOUT_S`: 408, connection closed)."""
    import uvicorn

    from hub.frontends.http.http_protocol import hub_http_protocol

    app = server.streamable_http_app(host=host) if transport == "http" else server.sse_app(host=host)
    config = uvicorn.Config(with_webhooks(app, server), host=host, port=port,
                            log_level=server.settings.log_level.lower(), http=hub_http_protocol(_body_timeout_s()),
                            timeout_keep_alive=IDLE_CONNECTION_S, access_log=False)  # as the hub: a line per request
    # was what forged posts could write without limit (outside review attack53 F4); refusals log their own, capped
    await uvicorn.Server(config).serve()


def _body_timeout_s() -> float:
    text = os.environ.get("MCP_SERVER_BODY_TIMEOUT_S", "")
    try:
        value = float(text) if text else BODY_TIMEOUT_S
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SystemExit(f"MCP_SERVER_BODY_TIMEOUT_S={text[:40]!r}: give a number of seconds above 0, e.g. 10")
    return value
