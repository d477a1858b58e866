"""Checks every HTTP request meets before any route: Host/Origin, body size, and time to arrive.

`HttpGuard` is the outermost ASGI layer, so `/healthz`, `/metrics`, the OAuth metadata and any
route added later get the same DNS-rebinding check as `/mcp` (421 for a foreign `Host`, 403 for a
foreign `Origin`), and no route reads more than `max_body_bytes` (413) or waits longer than
`body_timeout_s` for a body (408, then the connection is closed). The body is passed through as
it arrives, not buffered here, so an unauthenticated caller cannot make the hub hold its body.
`head_deadline_protocol` does the same for the request head, which uvicorn reads before any
ASGI code runs: a connection whose head does not complete in time is closed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import anyio
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("hub.http")

_DISCONNECT: Message = {"type": "http.disconnect"}


class HttpGuard:
    """ASGI middleware: the Host/Origin allow-lists, then a bounded, deadlined request body."""

    def __init__(
        self, app: ASGIApp, security: TransportSecuritySettings, max_body_bytes: int, body_timeout_s: float
    ) -> None:
        self.app = app
        self.origin_check = TransportSecurityMiddleware(security)
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (websockets are not served)
            await self.app(scope, receive, send)
            return
        if not _well_formed_host(scope):  # `127.0.0.1:80.evil.com` would pass a `127.0.0.1:*` allow-list entry
            await _refuse(send, 421, "the Host header is not a host name with an optional numeric port")
            return
        refusal = await self.origin_check.validate_request(Request(scope), is_post=False)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, self._too_large())
            return
        body = _BodyWatch(receive, send, self.max_body_bytes, anyio.current_time() + self.body_timeout_s, self)
        try:
            await self.app(scope, body.receive, body.send)
        except ClientDisconnect:
            if not body.refused:
                raise
            # we answered 408/413 and told the app the client left: the app giving up is the expected end,
            # not an error worth a traceback per refused request

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes (hub.http.max_body_bytes); send a smaller one"

    def _too_slow(self) -> str:
        return f"request body did not arrive within {self.body_timeout_s:g}s (hub.http.body_timeout_s); send it whole"


class _BodyWatch:
    """One request's `receive`/`send`, refusing (413/408) a body that is too large or too slow.

    After a refusal the app sees the client as gone and whatever it still sends is dropped."""

    def __init__(self, receive: Receive, send: Send, limit: int, deadline: float, guard: HttpGuard) -> None:
        self._receive, self._send = receive, send
        self._limit, self._deadline, self._guard = limit, deadline, guard
        self._received = 0
        self._complete = False
        self._answered = False
        """A response (ours or the app's) has started."""
        self._refused = False

    @property
    def refused(self) -> bool:
        """Whether this request was answered 408/413 by the guard."""
        return self._refused

    async def receive(self) -> Message:
        if self._refused:
            return _DISCONNECT
        if self._complete:  # after the body only a disconnect can come; no deadline for that
            return await self._receive()
        message: Message | None = None
        with anyio.move_on_after(max(0.0, self._deadline - anyio.current_time())):
            message = await self._receive()
        if message is None:
            logger.debug("request body not received in time; answered 408 and closed the connection")
            return await self._refuse(408, self._guard._too_slow())
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                return await self._refuse(413, self._guard._too_large())
            self._complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self._refused:
            return
        if message["type"] == "http.response.start":
            self._answered = True
        await self._send(message)

    async def _refuse(self, status: int, reason: str) -> Message:
        if not self._answered:
            self._answered = True
            await _refuse(self._send, status, reason)
        self._refused = True
        return _DISCONNECT


def _well_formed_host(scope: Scope) -> bool:
    """No Host header (HTTP/1.0), or `name`, `name:port`, `[v6]` or `[v6]:port` with a numeric port."""
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1")
            if host.startswith("["):
                closing = host.find("]")
                rest = host[closing + 1:] if closing > 0 else "?"
                return rest == "" or (rest.startswith(":") and rest[1:].isdigit())
            name, colon, port = host.partition(":")
            return bool(name) and ":" not in port and (not colon or port.isdigit())
    return True


async def _refuse(send: Send, status: int, reason: str) -> None:
    """A JSON error that also ends the connection: the rest of the body is never read."""
    response = JSONResponse({"error": reason}, status_code=status, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _HeadDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head takes longer than
    `head_timeout_s` to arrive (uvicorn itself waits forever for the first request's head)."""

    head_timeout_s: float = math.inf

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head():
            self._arm_head_timer()
        super().data_received(data)
        if not self._awaiting_head():
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_expired)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._awaiting_head() and not self.transport.is_closing():
            logger.debug("request head not received within %gs; closed the connection", self.head_timeout_s)
            self.transport.close()


def head_deadline_protocol(head_timeout_s: float) -> type[H11Protocol]:
    """The uvicorn `http` protocol class for `uvicorn.Config(http=...)` with this head deadline."""
    return type("HeadDeadlineH11", (_HeadDeadlineH11,), {"head_timeout_s": head_timeout_s})
