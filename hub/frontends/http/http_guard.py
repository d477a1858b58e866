"""Checks every HTTP request meets before any route: Host/Origin, CORS and body size.

`HttpGuard` is the outermost ASGI layer, so `/healthz`, `/metrics`, the OAuth metadata and any
route added later get the same DNS-rebinding check as `/mcp` (421 for a foreign `Host`, 403 for a
foreign `Origin`), a browser on an allowed origin gets CORS on the MCP endpoints (`cors`), and no
route reads more than `max_body_bytes` (413). The body is passed through as it arrives, not buffered here, so an unauthenticated caller cannot make the hub hold its body.
The time a head and a body may take to arrive (`hub.http.body_timeout_s`: 408, then the connection
is closed) is kept by the protocol below ASGI (`hub.frontends.http.http_protocol`).

Each request's headers are read in one pass. The SDK's Host/Origin check decides on those two
values alone against fixed allow-lists, so a pair it let through is remembered (a bounded set) and
not checked again; a pair it refuses is always asked again (its warning is logged each time). A body
whose size a `Content-Length` bounds (and no `Transfer-Encoding`: the parser then reads exactly that
many bytes) needs no counting once that length is within the limit; any other body is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.frontends.http.cors import is_cors_path, is_preflight, preflight, with_cors
from hub.frontends.http.http_protocol import TIMED_OUT_SCOPE_KEY

logger = logging.getLogger("hub.http")

_DISCONNECT: Message = {"type": "http.disconnect"}
_ALLOWED_PAIRS_MAX = 256
"""How many (Host, Origin) pairs the SDK let through are remembered."""


class HttpGuard:
    """ASGI middleware: the Host/Origin allow-lists, CORS for the origins they allow, then a bounded request body."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings, max_body_bytes: int) -> None:
        self.app = app
        self.origin_check = TransportSecurityMiddleware(security)
        self.max_body_bytes = max_body_bytes
        self._allowed: set[tuple[str | None, str | None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (websockets are not served)
            await self.app(scope, receive, send)
            return
        heads = _Heads(scope)
        if not _well_formed_host(heads.host):  # `127.0.0.1:80.evil.com` would pass a `127.0.0.1:*` allow-list entry
            await _refuse(send, 421, "the Host header is not a host name with an optional numeric port")
            return
        # `http://127.0.0.1:80.evil.com` would pass `http://127.0.0.1:*` likewise (an empty Origin is absent to the SDK)
        if heads.origin and not _well_formed_origin(heads.origin):
            await _refuse(send, 403, "the Origin header is not scheme://host with an optional numeric port")
            return
        pair = (heads.host, heads.origin)
        if pair not in self._allowed:
            refusal = await self.origin_check.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            if len(self._allowed) >= _ALLOWED_PAIRS_MAX:
                self._allowed.clear()
            self._allowed.add(pair)
        if heads.origin and is_cors_path(scope["path"]):  # a browser on an allowed origin (`cors`)
            if is_preflight(scope):
                await preflight(scope, send, heads.origin)
                return
            send = with_cors(send, heads.origin)
        declared = heads.content_length
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, self._too_large())
            return
        body: _BodyWatch | None = None
        try:
            if declared is not None and not heads.transfer_encoding:  # bounded by its length: nothing to count
                await self.app(scope, receive, send)
            else:
                body = _BodyWatch(receive, send, self.max_body_bytes, self._too_large)
                await self.app(scope, body.receive, body.send)
        except ClientDisconnect:
            if not scope.get(TIMED_OUT_SCOPE_KEY) and not (body is not None and body.refused):
                raise
            # we answered 408/413 and told the app the client left: the app giving up is the expected end,
            # not an error worth a traceback per refused request
        except asyncio.CancelledError:
            # Only uvicorn cancels a request's task: a stop, once answers under way have had their time
            # (`transports.DRAIN_S`). The app has cancelled its calls on the way out; the client is told the
            # hub is stopping (503, or its stream is ended), and the request ends here — not as a ~40-line
            # traceback per request in flight on every stop (re-check, faults round 7).
            logger.info("a request in flight ended: the hub is stopping")
            await _ended_by_stop(body.send if body is not None else send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes (hub.http.max_body_bytes); send a smaller one"


class _Heads:
    """What the guard reads of a request's headers, in one pass; the first of a repeated header, as
    Starlette's `Headers.get` gives it to the SDK's check."""

    __slots__ = ("content_length", "host", "origin", "transfer_encoding")

    def __init__(self, scope: Scope) -> None:
        self.host: str | None = None
        self.origin: str | None = None
        self.transfer_encoding = False
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                if self.host is None:
                    self.host = value.decode("latin-1")
            elif name == b"origin":
                if self.origin is None:
                    self.origin = value.decode("latin-1")
            elif name == b"content-length":
                if length is None:
                    length = value
            elif name == b"transfer-encoding":
                self.transfer_encoding = True
        self.content_length: int | None = None
        if length is not None:
            try:
                self.content_length = int(length)
            except ValueError:
                self.transfer_encoding = True  # an unreadable length bounds nothing: count the body
            else:
                if self.content_length < 0:
                    self.content_length, self.transfer_encoding = None, True


class _BodyWatch:
    """One request's `receive`/`send`, refusing (413) a body that grows over the limit.

    After a refusal the app sees the client as gone and whatever it still sends is dropped."""

    __slots__ = ("_answered", "_complete", "_limit", "_receive", "_received", "_send", "_too_large", "refused")

    def __init__(self, receive: Receive, send: Send, limit: int, too_large: Callable[[], str]) -> None:
        self._receive, self._send = receive, send
        self._limit, self._too_large = limit, too_large
        self._received = 0
        self._complete = False
        self._answered = False
        """A response (ours or the app's) has started."""
        self.refused = False
        """Whether this request was answered 413 by the guard."""

    async def receive(self) -> Message:
        if self.refused:
            return _DISCONNECT
        message = await self._receive()
        if not self._complete and message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                if not self._answered:
                    self._answered = True
                    await _refuse(self._send, 413, self._too_large())
                self.refused = True
                return _DISCONNECT
            self._complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self._answered = True
        await self._send(message)


def _well_formed_host(host: str | None) -> bool:
    """No Host header (HTTP/1.0), or `name`, `name:port`, `[v6]` or `[v6]:port` with a numeric port."""
    if host is None:
        return True
    if host.startswith("["):
        closing = host.find("]")
        rest = host[closing + 1:] if closing > 0 else "?"
        return rest == "" or (rest.startswith(":") and _port(rest[1:]))
    name, colon, port = host.partition(":")
    return bool(name) and ":" not in port and (not colon or _port(port))


def _port(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes `²`)."""
    return text.isascii() and text.isdigit()


def _well_formed_origin(origin: str) -> bool:
    """`null` (an opaque origin, which no allow-list entry names), or `scheme://` and a well-formed host."""
    scheme, separator, host = origin.partition("://")
    return origin == "null" or (bool(scheme) and bool(separator) and "/" not in host and _well_formed_host(host))


async def _ended_by_stop(send: Send) -> None:
    """Answer 503 if no answer has started, else end the one under way (either send may refuse: ignored)."""
    with suppress(Exception):
        await _refuse(send, 503, "the hub is stopping; send the request again (to another replica, or once it is back)",
                      {"Retry-After": "5"})
        return
    with suppress(Exception):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _refuse(send: Send, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error that also ends the connection: the rest of the body is never read."""
    response = JSONResponse({"error": reason}, status_code=status, headers={"Connection": "close", **(headers or {})})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
