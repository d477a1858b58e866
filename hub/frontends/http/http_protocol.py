"""uvicorn's h11 HTTP/1.1 protocol for the hub, with the deadlines on a request's arrival that
belong below ASGI (uvicorn reads a head before any app runs, and the body as it comes):
- a deadline for the head (uvicorn itself waits forever for a connection's first request head): a
  connection whose head does not arrive in `hub.http.body_timeout_s` is closed;
- the same deadline, afresh, for the body: a body not whole in time is answered 408 (when no answer
  has started) and the connection closed; the app then sees the client as gone. Kept here, one timer
  per connection moved lazily, rather than around each ASGI `receive` (an anyio cancel scope per
  request there).
h11 refuses a head still incomplete after 16 KiB (uvicorn answers 400; one that arrives whole in one
read may be longer), and parses a pipelined request only once the one before it is answered (reading
pauses meanwhile; that request is parsed in `on_response_complete`, which arms its deadline too), so
`self.cycle` is always the request being served. After `Expect: 100-continue` the body's deadline
starts once the `100 Continue` has gone out (uvicorn sends it when the app first reads the body).
httptools (uvicorn's C parser, ~0.15 ms less per request) was tried and left out: it caps neither
heads nor chunked trailers, drops the body of a request carrying `Upgrade: h2c`
(uvicorn#2722; Java's RestClient and Ktor send it), and parses pipelined requests while an answer
is still going out (docs/performance.md, "HTTP front, round 2").
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("hub.http")

TIMED_OUT_SCOPE_KEY = "mcp_hub.body_timed_out"
"""Set in a request's ASGI scope when its body missed the deadline (the app's `ClientDisconnect` is then expected)."""


CONTINUE_POLL_S = 0.25
"""While a client waits for `100 Continue`, how often the deadline looks whether it went out."""


class _HubH11(H11Protocol):
    """uvicorn's h11 protocol with the head and body deadlines (see the module's docstring).
    `timeout_s` is `hub.http.body_timeout_s`."""

    timeout_s: float = math.inf

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        """When the head or body now awaited must have arrived (loop time); None while nothing is awaited.
        One timer serves every deadline of a connection: it is moved on lazily, not cancelled and
        created per request (`_expired` re-arms for a later deadline)."""
        self._continuing: Any = None
        """A request whose client waited for `100 Continue` when the timer last looked."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_PairedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._await_by()

    def data_received(self, data: bytes) -> None:
        head_before = self._awaiting_head()
        if head_before and self._deadline is None:  # the first bytes of a head
            self._await_by()
        super().data_received(data)
        if self._awaiting_head():
            return
        if head_before or not self.cycle.more_body:
            self._head_done()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # parses a request that came pipelined behind the one just answered
        if self.transport.is_closing():
            return
        if not self._awaiting_head():  # that request's head is whole
            self._head_done()
        elif self.conn.trailing_data[0]:  # part of its head is here: the head's deadline
            self._await_by()

    def _head_done(self) -> None:
        """A head is whole: no deadline if its body is too, else the body's own (once a client that
        waits for `100 Continue` has had it: until then the timer looks every `CONTINUE_POLL_S`)."""
        cycle = self.cycle
        if not cycle.more_body:
            self._deadline = None
        elif cycle.waiting_for_100_continue:
            self._continuing = cycle
            self._await_by(CONTINUE_POLL_S)
        else:
            self._await_by()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _await_by(self, seconds: float | None = None) -> None:
        self._deadline = self.loop.time() + (self.timeout_s if seconds is None else seconds)
        if self._timer is not None and self._timer.when() > self._deadline:  # sooner than it would look
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < deadline:  # a later head or body than the one this timer was set for
            self._timer = self.loop.call_at(deadline, self._expired)
            return
        cycle = self.cycle
        if self._awaiting_head():
            logger.debug("request head not received within %gs; closed the connection", self.timeout_s)
        elif cycle.waiting_for_100_continue or (cycle is self._continuing and cycle.more_body):
            # The client waits for `100 Continue` (look again soon), or has had it since: the body's own deadline.
            self._continuing = None
            self._head_done()
            return
        elif cycle.more_body and not cycle.response_started:  # (an app already answering is left to finish)
            logger.debug("request body not received in time; answered 408 and closed the connection")
            cycle.scope[TIMED_OUT_SCOPE_KEY] = True
            reason = f"request body did not arrive within {self.timeout_s:g}s (hub.http.body_timeout_s); send it whole"
            self.transport.write(_raw_json(408, "Request Timeout", {"error": reason}))
            cycle.disconnected = True  # what the app sends from now on is dropped; its `receive` says the client left
            cycle.message_event.set()
        else:  # an app already answering: look again later
            self._await_by()
            return
        self.transport.close()


PAIRED_MAX = 64 * 1024
"""Writes larger than this go out on their own (after what is held), never copied to be paired."""


class _PairedWrites:
    """The connection's transport, with a write held until the next one or the end of this turn of
    the loop, whichever comes first. uvicorn's h11 protocol writes a response's head and its body
    separately: two sends and two packets, and a client woken for each; held, they go out as one.
    Closing sends what is held first; everything else is the transport's own."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        held = self._held
        if len(data) > PAIRED_MAX:  # a big piece is not copied to pair it
            self._send_held()
            self._transport.write(data)
        elif held is None:
            self._held = bytes(data)
            self._loop.call_soon(self._send_held)
        else:
            self._held = None
            self._transport.write(held + data)

    def _send_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def write_eof(self) -> None:
        self._send_held()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _raw_json(status: int, reason: str, body: dict[str, Any]) -> bytes:
    """A whole HTTP/1.1 response that also ends the connection."""
    response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
    head = b"".join(name + b": " + value + b"\r\n" for name, value in response.raw_headers)
    return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, reason.encode(), head, response.body)


def hub_http_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """The uvicorn `http` protocol class for `uvicorn.Config(http=...)`, with these deadlines."""
    return type("HubH11", (_HubH11,), {"timeout_s": timeout_s})
