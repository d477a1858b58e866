"""uvicorn's HTTP/1.1 protocol for the hub: its C parser (httptools) where installed, h11 otherwise,
with the limits on a request's arrival that belong below ASGI (uvicorn reads a head before any app
runs, and the body as it comes):
- a deadline for the head (uvicorn itself waits forever for a connection's first request head): a
  connection whose head does not arrive in `hub.http.body_timeout_s` is closed;
- the same deadline, afresh, for the body: a body not whole in time is answered 408 (when no answer
  has started) and the connection closed; the app then sees the client as gone. Kept here, one
  timer per request, rather than around each ASGI `receive` (~0.05 ms of every request there);
- with httptools, a size cap on the head (h11 caps a head at 16 KiB by itself; httptools does not).

httptools is a dependency: it parses a head and writes a response ~0.15 ms faster per request than
h11 (docs/performance.md, "HTTP front, round 2"). h11 stays the fallback where it does not install.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 where it does not install
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

logger = logging.getLogger("hub.http")

MAX_HEAD_BYTES = 16 * 1024
"""The largest request head (request line and headers) the hub reads: h11's own default cap, kept
for httptools (a longer head is answered 431 and the connection closed)."""


DISCONNECT_SCOPE_KEY = "mcp_hub.on_disconnect"
"""In a request's ASGI scope: a list the app may append callables to, each called once if the client
goes before the response is complete (cheaper than a task per request waiting in `receive` for
`http.disconnect`). Absent where this protocol does not serve the request (then watch `receive`)."""

TIMED_OUT_SCOPE_KEY = "mcp_hub.body_timed_out"
"""Set in a request's ASGI scope when its body missed the deadline (the app's `ClientDisconnect` is then expected)."""


class _ArrivalLimits:
    """Mixed into a uvicorn HTTP protocol: the head and body deadlines and (`cap_head`) the head cap
    (see the module's docstring). `timeout_s` is `hub.http.body_timeout_s`."""

    timeout_s: float = math.inf
    cap_head: bool = False
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        """When the head or body now awaited must have arrived (loop time); None while nothing is awaited.
        One timer serves every deadline of a connection: it is moved on lazily, not cancelled and
        created per request (`_expired` re-arms for a later deadline)."""
        self._head_bytes = 0
        self._hooked: Any = None
        """The last request cycle given a `DISCONNECT_SCOPE_KEY` list."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._await_by()

    def data_received(self, data: bytes) -> None:
        head_before = self._awaiting_head()
        if head_before and self._deadline is None:  # the first bytes of a head
            self._await_by()
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not self._hooked and self.cycle is not None:  # a new request: its app has not run yet
            self._hooked = self.cycle
            self.cycle.scope[DISCONNECT_SCOPE_KEY] = []
        if self._awaiting_head():
            if head_before:
                self._head_bytes += len(data)
                if self.cap_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                    logger.debug("request head over %d bytes; answered 431 and closed the connection", MAX_HEAD_BYTES)
                    self.transport.write(_raw_json(431, {"error": f"request head larger than {MAX_HEAD_BYTES} bytes; "
                                                                  "send shorter headers"}))
                    self.transport.close()
            return
        self._head_bytes = 0
        if not self.cycle.more_body:  # the request is whole: nothing more to wait for
            self._deadline = None
        elif head_before:  # the head just completed: the body gets a deadline of its own
            self._await_by()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self.cycle
        super().connection_lost(exc)  # type: ignore[misc]
        if cycle is not None and not cycle.response_complete:
            for gone in cycle.scope.get(DISCONNECT_SCOPE_KEY, ()):
                try:
                    gone()
                except Exception:  # boundary: one app's callback must not keep the others from running
                    logger.exception("a disconnect callback failed")

    def _awaiting_head(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _await_by(self) -> None:
        self._deadline = self.loop.time() + self.timeout_s
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
        elif getattr(cycle, "waiting_for_100_continue", False):  # the client waits for us, not we for it
            self._await_by()
            return
        elif cycle.more_body and not cycle.response_started:  # (an app already answering is left to finish)
            logger.debug("request body not received in time; answered 408 and closed the connection")
            cycle.scope[TIMED_OUT_SCOPE_KEY] = True
            reason = f"request body did not arrive within {self.timeout_s:g}s (hub.http.body_timeout_s); send it whole"
            self.transport.write(_raw_json(408, {"error": reason}))
            cycle.disconnected = True  # what the app sends from now on is dropped; its `receive` says the client left
            cycle.message_event.set()
        else:  # an app already answering (or nothing awaited after all): look again later
            self._await_by()
            return
        self.transport.close()


def _raw_json(status: int, body: dict[str, Any]) -> bytes:
    """A whole HTTP/1.1 response that also ends the connection."""
    response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
    head = b"".join(name + b": " + value + b"\r\n" for name, value in response.raw_headers)
    return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, _REASONS.get(status, b""), head, response.body)


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def hub_http_protocol(timeout_s: float, parser: str = "auto") -> type[asyncio.Protocol]:
    """The uvicorn `http` protocol class for `uvicorn.Config(http=...)`: httptools where installed
    (`parser` "auto" or "httptools"), else h11 ("h11" forces it), with `_ArrivalLimits`."""
    if parser != "h11" and HttpToolsProtocol is not None:
        return type("HubHttpTools", (_ArrivalLimits, HttpToolsProtocol), {"timeout_s": timeout_s, "cap_head": True})
    return type("HubH11", (_ArrivalLimits, H11Protocol), {"timeout_s": timeout_s})

