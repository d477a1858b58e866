"""Checks every HTTP request meets before any route: Host/Origin, CORS and body size.

`HttpGuard` is the outermost ASGI layer, so `/healthz`, `/metrics`, the OAuth metadata and any
route added later get the same DNS-rebinding check as `/mcp` (421 for a foreign `Host`, 403 for a
foreign `Origin`), a browser on an allowed origin gets CORS on the MCP endpoints (`cors`), and no
route reads more than `max_body_bytes` (413). The body is passed through as it arrives, not buffered here, so an unauthenticated caller cannot make the hub hold its body.
A body over the limit by at most `DRAIN_FACTOR` times is read to its end and dropped before the 413
goes out (a lingering close, as nginx does), so a client still sending reads the answer instead of a
reset connection — the SDK's client then raises the 413's JSON-RPC error and keeps its session (outside
review memory26 D7: a document under a tool's advertised size broke the client's session); a bigger one
is answered at once and the connection closed. On the MCP endpoints the 413 is a JSON-RPC error
(both: `hub.frontends.http.http_refusals`).
The time a head and a body may take to arrive (`hub.http.body_timeout_s`: 408, then the connection
is closed) is kept by the protocol below ASGI (`hub.frontends.http.http_protocol`).

Each request's headers are read in one pass. The SDK's Host/Origin check decides on those two
values alone against fixed allow-lists, so a pair it let through is remembered (a bounded set) and
not checked again; a pair it refuses is always asked again (its warning is logged each time). A body
whose size a `Content-Length` bounds (and no `Transfer-Encoding`: the parser then reads exactly that
many bytes) needs no counting once that length is within the limit; any other body is counted.

A stop (SIGTERM, SIGINT) is drained here (`stop`, called once the listener is closed): long-lived
streams (a GET event stream, legacy `/sse`, a 2026-07-28 `subscriptions/listen`) end at once, so their
clients reconnect to another replica instead of holding the drain, and calls go on for
`hub.http.drain_s`. A request still running then is cancelled by uvicorn and answered for what it
is (outside review, cluster round 18 #2: every one was told "send the request again", a write that
had reached its server included, and the resend wrote twice):
- one whose body had not all arrived, one that is not a `tools/call`, or a call of a read-only
  tool: nothing was done that sending it again could double — 503 + `Retry-After`, "send it again";
- any other `tools/call`: it may have reached its server, so its outcome is unknown — a tool error
  (`unavailable`, not retryable) saying so and to check before sending it again (within the event
  stream when its answer had started as one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import anyio

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import error_result, outcome_unknown_body
from hub.frontends.http.cors import is_cors_path, is_preflight, preflight, with_cors
from hub.frontends.http.http_protocol import TIMED_OUT_SCOPE_KEY
from hub.frontends.http.http_refusals import DRAIN_FACTOR, BodyWatch, drop_body, refuse

logger = logging.getLogger("hub.http")

__all__ = ["DRAIN_FACTOR", "HttpGuard"]

_ALLOWED_PAIRS_MAX = 256
"""How many (Host, Origin) pairs the SDK let through are remembered."""


class HttpGuard:
    """ASGI middleware: the Host/Origin allow-lists, CORS for the origins they allow, then a bounded request body."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings, max_body_bytes: int,
                 read_only: Callable[[str], bool] | None = None,
                 output_schema: Callable[[str], dict[str, Any] | None] | None = None) -> None:
        """`read_only`: whether an exposed tool name is read-only (a call of one cut by a stop may be sent again);
        `output_schema`: its `outputSchema` (the error of a cut call is structured only where it fits)."""
        self.app = app
        self.origin_check = TransportSecurityMiddleware(security)
        self.max_body_bytes = max_body_bytes
        self._allowed: set[tuple[str | None, str | None]] = set()
        self.read_only: Callable[[str], bool] = read_only or (lambda name: False)
        self.output_schema: Callable[[str], dict[str, Any] | None] = output_schema or (lambda name: None)
        self.stopping = False
        self._flights: set[_Flight] = set()

    def stop(self) -> int:
        """The hub is stopping and its listener is closed: end every long-lived stream now (its client
        reconnects elsewhere), and any opened from now on; calls go on. How many streams were ended."""
        self.stopping = True
        streams = [flight for flight in self._flights if flight.is_stream()]
        for flight in streams:
            flight.scope.cancel()
        return len(streams)

    def in_flight(self) -> int:
        """Requests under way (streams included)."""
        return len(self._flights)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (websockets are not served)
            await self.app(scope, receive, send)
            return
        heads = _Heads(scope)
        if not _well_formed_host(heads.host):  # `127.0.0.1:80.evil.com` would pass a `127.0.0.1:*` allow-list entry
            await refuse(send, 421, "the Host header is not a host name with an optional numeric port")
            return
        # `http://127.0.0.1:80.evil.com` would pass `http://127.0.0.1:*` likewise (an empty Origin is absent to the SDK)
        if heads.origin and not _well_formed_origin(heads.origin):
            await refuse(send, 403, "the Origin header is not scheme://host with an optional numeric port")
            return
        pair = (heads.host, heads.origin)
        if pair not in self._allowed:
            refusal = await self.origin_check.validate_request(Request(scope), is_post=False)
            if refusal is not None and refusal.status_code == 403:  # the Origin: say which setting allows it
                await refuse(send, 403, f"the Origin {heads.origin[:200]!r} is not allowed: a browser page on it may "
                                        "not call this hub. If it is this hub's own public address (the admin "
                                        "console behind a proxy), list it in hub.allowed_origins or set "
                                        "hub.auth.resource_url to the public URL", jsonrpc=is_cors_path(scope["path"]))
                return
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
            if declared <= DRAIN_FACTOR * self.max_body_bytes:
                await drop_body(receive)
            await refuse(send, 413, self._too_large(), jsonrpc=is_cors_path(scope["path"]))
            return
        flight = _Flight(scope, receive, send)
        if self.stopping and flight.is_stream():
            await refuse(send, 503, _STREAM_AGAIN, {"Retry-After": "1"})
            return
        receive, send = flight.receive, flight.send
        body: BodyWatch | None = None
        self._flights.add(flight)
        try:
            with flight.scope:
                if declared is not None and not heads.transfer_encoding:  # bounded by its length: nothing to count
                    await self.app(scope, receive, send)
                else:
                    body = BodyWatch(receive, send, self.max_body_bytes, self._too_large, is_cors_path(scope["path"]))
                    await self.app(scope, body.receive, body.send)
            if flight.scope.cancelled_caught:  # a stream `stop` ended: its client opens it again elsewhere
                flight.closing = True
                await _stream_ended(body.send if body is not None else send)
        except ClientDisconnect:
            if not scope.get(TIMED_OUT_SCOPE_KEY) and not (body is not None and body.refused):
                raise
            # we answered 408/413 and told the app the client left: the app giving up is the expected end,
            # not an error worth a traceback per refused request
        except asyncio.CancelledError:
            # Only uvicorn cancels a request's task: a stop, once calls have had `hub.http.drain_s`. The app
            # has cancelled its calls on the way out; the client is told what that means for its request
            # (`_cut_by_stop`), and the request ends here — not as a ~40-line traceback per request in
            # flight on every stop (re-check, faults round 7).
            logger.info("a request in flight was cut: the hub is stopping and hub.http.drain_s has passed")
            flight.closing = True
            await _cut_by_stop(flight, self.read_only, self.output_schema, body.send if body is not None else send)
        finally:
            self._flights.discard(flight)

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


_SEND_AGAIN = ("the hub is stopping and cut this request before answering it; it changes nothing (not a tool call, a "
               "read-only tool, or not all received), so send it again (to another replica, or once it is back)")
_STREAM_AGAIN = "the hub is stopping; open the stream again (another replica serves it, or this one once it is back)"


async def _stream_ended(send: Send) -> None:
    """End a stream `HttpGuard.stop` cut: its answer had started (else 503: open it again)."""
    with suppress(Exception):
        await refuse(send, 503, _STREAM_AGAIN, {"Retry-After": "1"})
        return
    with suppress(Exception):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cut_by_stop(flight: _Flight, read_only: Callable[[str], bool],
                       output_schema: Callable[[str], dict[str, Any] | None], send: Send) -> None:
    """Answer a request the stop cancelled, truthfully (module docstring): 503 "send it again" for one
    nothing came of, else the tool error of an unknown outcome; an answer already under way as an event
    stream gets that error as its last event, any other is ended (either send may refuse: ignored)."""
    call = flight.tool_call()
    unknown = call is not None and not read_only(call[1])
    if unknown and call is not None:
        reply = _outcome_unknown(*call, output_schema(call[1]))
        if flight.started:
            if flight.streaming:
                event = b"event: message\r\ndata: " + reply + b"\r\n\r\n"
                with suppress(Exception):
                    await send({"type": "http.response.body", "body": event, "more_body": False})
                    return
        else:
            with suppress(Exception):
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode()),
                                        (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": reply})
                return
    if not flight.started:
        with suppress(Exception):
            await refuse(send, 503, _SEND_AGAIN, {"Retry-After": "5"})
            return
    with suppress(Exception):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _outcome_unknown(request_id: Any, tool: str, output_schema: dict[str, Any] | None) -> bytes:
    """The JSON-RPC answer to a `tools/call` a stop cut after its server may have acted on it (the shape
    every call path gives a write lost in flight: `hub.errors.outcome_unknown_body`), structured only where
    the tool's `outputSchema` admits it (`hub.errors.error_result`; recheck26 N4)."""
    body = outcome_unknown_body(f"the hub stopped (a restart or a deploy) while {tool[:128]} was running, after it "
                                "may have reached its server", tool)
    result = error_result(body, output_schema).model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}, ensure_ascii=False).encode()


class _Flight:
    """One request in flight, as a stop needs to see it: whether it is a long-lived stream, the body of
    a POST to an MCP endpoint (kept until it ends: what it asked is read only if a stop cuts it), and
    whether its answer has started, as an event stream or not."""

    __slots__ = ("_chunks", "_complete", "_headers", "_receive", "_send", "_stream_get", "closing", "scope", "started",
                 "streaming")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self.scope = anyio.CancelScope()
        self.started = False
        self.streaming = False
        """The answer started as an event stream."""
        self.closing = False
        """The guard ends the answer (a stop): what it sends is not held back."""
        self._headers: dict[bytes, bytes] = {name: value for name, value in scope["headers"]
                                             if name in (b"accept", b"last-event-id", b"mcp-method")}
        self._stream_get = scope["method"] == "GET" and (
            scope["path"] == "/sse" or b"text/event-stream" in self._headers.get(b"accept", b"")) and \
            not self._headers.get(b"last-event-id", b"").startswith(b"r")  # `r…`: a call's stream resumed (`resumable`)
        self._chunks: list[bytes] | None = [] if scope["method"] == "POST" and scope["path"].startswith("/mcp") else None
        self._complete = False

    def is_stream(self) -> bool:
        """A GET event stream (but a call's stream resumed: a call), legacy `/sse`, or `subscriptions/listen`."""
        if self._stream_get:
            return True
        return self._headers.get(b"mcp-method") == b"subscriptions/listen" or self._asked().get("method") == "subscriptions/listen"

    def tool_call(self) -> tuple[Any, str] | None:
        """(request id, tool name) of a `tools/call` whose body had all arrived, else None."""
        asked = self._asked()
        params = asked.get("params")
        if asked.get("method") != "tools/call" or "id" not in asked or not isinstance(params, dict):
            return None
        name = params.get("name")
        return (asked["id"], name) if isinstance(name, str) else None

    def _asked(self) -> dict[str, Any]:
        """The request's JSON-RPC object, once its body has all arrived; {} otherwise."""
        if not self._complete or not self._chunks:
            return {}
        try:
            asked = json.loads(b"".join(self._chunks))
        except ValueError:
            return {}
        return asked if isinstance(asked, dict) else {}

    async def receive(self) -> Message:
        message = await self._receive()
        if self._chunks is not None and message["type"] == "http.request" and not self._complete:
            self._chunks.append(message.get("body", b""))
            self._complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.streaming = any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                                 for name, value in message.get("headers", ()))
        elif self.streaming and not self.closing and not message.get("more_body", False) and _being_cancelled():
            # An event stream's app ends it as its task is cancelled (a stop): the guard ends it instead,
            # after the answer the stop calls for (`_cut_by_stop`, `_stream_ended`).
            if message.get("body"):
                await self._send({**message, "more_body": True})
            return
        await self._send(message)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
