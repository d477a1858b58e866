"""How `hub.frontends.http.http_guard.HttpGuard` refuses a request, and keeps a body within its limit.

`refuse` writes a JSON error (a JSON-RPC error on the MCP endpoints) that also ends the connection.
`BodyWatch` counts a body no `Content-Length` bounds and refuses it (413) once it grows over the
limit; a body over the limit by at most `DRAIN_FACTOR` times is read to its end and dropped first
(`drop_body`: a lingering close, as nginx does), so a client still sending reads the answer instead
of a reset connection (outside review memory26 D7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Send

__all__ = ["DRAIN_FACTOR", "BodyWatch", "drop_body", "refuse"]

_DISCONNECT: Message = {"type": "http.disconnect"}
DRAIN_FACTOR = 4
"""A body over `max_body_bytes` by at most this many times is read to its end (and dropped) before the 413."""


class BodyWatch:
    """One request's `receive`/`send`, refusing (413) a body that grows over the limit.

    After a refusal the app sees the client as gone and whatever it still sends is dropped."""

    __slots__ = ("_answered", "_complete", "_jsonrpc", "_limit", "_receive", "_received", "_send", "_too_large", "refused")

    def __init__(self, receive: Receive, send: Send, limit: int, too_large: Callable[[], str], jsonrpc: bool) -> None:
        self._receive, self._send = receive, send
        self._limit, self._too_large, self._jsonrpc = limit, too_large, jsonrpc
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
                    if message.get("more_body", False):
                        await drop_body(self._receive, DRAIN_FACTOR * self._limit - self._received)
                    await refuse(self._send, 413, self._too_large(), jsonrpc=self._jsonrpc)
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


async def drop_body(receive: Receive, budget: int | None = None) -> None:
    """Read the rest of a refused body and drop it (at most `budget` more bytes, if given), so that its
    client, still sending, reads the answer; the body deadline (408) bounds the time it may take."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        if budget is not None:
            budget -= len(message.get("body", b""))
            if budget < 0:
                return


async def refuse(send: Send, status: int, reason: str, headers: dict[str, str] | None = None, *,
                 jsonrpc: bool = False) -> None:
    """A JSON error that also ends the connection (whatever of the body is left is never read); `jsonrpc`:
    as a JSON-RPC error (`id` null: the request was not read), which an MCP client raises for its request."""
    body: dict[str, Any] = ({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": reason}} if jsonrpc
                            else {"error": reason})
    response = JSONResponse(body, status_code=status, headers={"Connection": "close", **(headers or {})})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
