"""JSON-RPC requests to a stdio child, sent and answered as plain JSON beside the SDK session.

The hub's fast path (`hub.frontends.stdio.stdio_calls`) relays `tools/call` without building pydantic models; this
is its downstream half. Requests get ids of their own (`"hub-<n>"`, strings, where the SDK session
numbers its requests), so the child's stdout reader can hand each answer — and each progress
notification carrying such an id as its token — to the waiting call before the SDK parses anything.
The SDK session keeps everything else on the same pipes: the handshake, lists, list changes.

What the SDK's dispatcher does for its own requests is done here too: the request and any
`notifications/cancelled` carry the session's protocol-era stamp; abandoning a call (deadline, client
cancel) tells the child with `notifications/cancelled`; a JSON-RPC error becomes `MCPError`; a closed
connection fails every waiting call with `CONNECTION_CLOSED`.

Waiting uses asyncio futures directly: the channel is only created on the asyncio backend (the one
`mcp-hub` runs), and anyio's per-call backend lookup was a tenth of a relayed call's cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import anyio
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR

from hub.frontends.stdio.json_lines import json_line, json_object
from hub.frontends.stdio.line_pipes import Send, WriteNow

logger = logging.getLogger("hub.downstream")

class ConnectionLost(MCPError):
    """A waiting call failed by the hub itself because the connection closed (no answer came)."""

    def __init__(self) -> None:
        super().__init__(code=CONNECTION_CLOSED, message="Connection closed")


class ErrorAnswer(MCPError):
    """A JSON-RPC error the server answered; its code may be any, -32000 included (the first of
    JSON-RPC's server-error range, which the SDK also uses for a closed connection)."""


NOT_SENT_MARK = "mcp-hub/not-sent"
"""`data.by` of the JSON-RPC error the hub's transports answer a request with that was never sent
(`not_sent_error`): the SDK's session passes it to the caller as an `MCPError`."""
NOT_SENT_MESSAGE = "Not sent: the connection to the server was closed or could not be made"


class NotSent(MCPError, anyio.BrokenResourceError):
    """A request that never left the hub: the connection was already closed (or the pipe already known
    closed) when it was to be written, so nothing of it reached the server. Unlike `ConnectionLost` (a
    request on the wire when its connection closed, which may have taken effect), calling again is safe
    whatever the tool (outside review recheck21h #1); `hub.calls.errors` answers it retryable. Still a
    `CONNECTION_CLOSED` `MCPError` (as a closed channel raised before) and a `BrokenResourceError` (as a
    closed pipe raised before), for whoever catches those."""

    def __init__(self, why: str) -> None:
        super().__init__(code=CONNECTION_CLOSED, message=NOT_SENT_MESSAGE, data={"by": NOT_SENT_MARK, "why": why})
        self.why = why

    def __str__(self) -> str:
        return self.why


def not_sent_error(why: str) -> dict[str, Any]:
    """The JSON-RPC `error` answering a request that was never sent (`why`: what stopped it)."""
    return {"code": CONNECTION_CLOSED, "message": NOT_SENT_MESSAGE, "data": {"by": NOT_SENT_MARK, "why": why}}


def not_sent_why(data: object) -> str | None:
    """What stopped a request from being sent, from `not_sent_error`'s `data`; None for any other data."""
    if isinstance(data, dict) and data.get("by") == NOT_SENT_MARK:
        return str(data.get("why") or "the connection was closed")
    return None


ID_PREFIX = "hub-"
ID_MARKER = b'"hub-'
"""Bytes every line meant for this channel contains (its id or progress token)."""
CANCEL_GRACE_S = 1.0

Stamp = Callable[[dict[str, Any], dict[str, Any]], None]


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (the channel needs it; trio has no fast path)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Pending:
    """One request on the wire: the channel it went out on, its id, the future its answer (None:
    connection closed) lands in, where its progress goes, and — for a request sent by `send_now` —
    who to tell the moment the answer arrives."""

    __slots__ = ("answer", "channel", "ident", "on_answer", "progress", "stamp")

    def __init__(self, channel: JsonChannel, ident: str, stamp: Stamp, progress: ProgressFnT | None,
                 answer: asyncio.Future[dict[str, Any] | None],
                 on_answer: Callable[[dict[str, Any] | None], None] | None = None) -> None:
        self.channel = channel
        self.ident = ident
        self.stamp = stamp
        self.progress = progress
        self.answer = answer
        self.on_answer = on_answer


class JsonChannel:
    """Requests with string ids on one child's stdin; their answers taken off its stdout."""

    def __init__(self) -> None:
        self._send: Send | None = None
        self._write_now: WriteNow | None = None
        self._waiting: dict[str, Pending] = {}
        self._counter = 0

    @property
    def open(self) -> bool:
        return self._send is not None

    def bind(self, send: Send, write_now: WriteNow | None = None) -> None:
        """Start sending through `send` (one call per complete line); `write_now(line)`, if given,
        writes a line at once when the pipe is not backed up and says whether it did."""
        self._send = send
        self._write_now = write_now

    def close(self) -> None:
        """The connection is gone: every waiting call fails with `CONNECTION_CLOSED`."""
        self._send = self._write_now = None
        for waiting in list(self._waiting.values()):
            self._settle(waiting, None)

    def take_answer(self, line: bytes) -> bool:
        """Take `line` if it answers one of our requests, completing the call at once (progress
        notifications are left to `accept`, which must await the call's progress callback)."""
        message = json_object(line)
        return message is not None and self._answer(message)

    async def accept(self, line: bytes) -> bool:
        """Take `line` if it answers one of our requests or reports its progress."""
        message = json_object(line)
        if message is None:
            return False
        if self._answer(message):
            return True
        if message.get("method") == "notifications/progress" and isinstance(params := message.get("params"), dict):
            token = params.get("progressToken")
            waiting = self._waiting.get(token) if isinstance(token, str) else None
            if waiting is None or waiting.progress is None:
                return False
            await _report(waiting.progress, params)
            return True
        return False

    def _answer(self, message: dict[str, Any]) -> bool:
        ident = message.get("id")
        if not isinstance(ident, str) or "method" in message:
            return False
        waiting = self._waiting.get(ident)
        if waiting is None:
            return ident.startswith(ID_PREFIX)  # an answer to a call already abandoned
        self._settle(waiting, message)
        return True

    @staticmethod
    def _settle(waiting: Pending, message: dict[str, Any] | None) -> None:
        if waiting.answer.done():
            return
        waiting.answer.set_result(message)
        if waiting.on_answer is not None:
            waiting.on_answer(message)

    def _register(self, method: str, params: dict[str, Any], stamp: Stamp, progress: ProgressFnT | None,
                  on_answer: Callable[[dict[str, Any] | None], None] | None = None) -> tuple[Pending, bytes]:
        self._counter += 1
        ident = f"{ID_PREFIX}{self._counter}"
        data: dict[str, Any] = {"method": method, "params": dict(params)}
        if progress is not None:
            data["params"]["_meta"] = {**data["params"].get("_meta", {}), "progressToken": ident}
        stamp(data, {})
        pending = Pending(self, ident, stamp, progress, asyncio.get_running_loop().create_future(), on_answer)
        self._waiting[ident] = pending
        return pending, json_line({"jsonrpc": "2.0", "id": ident, **data})

    async def request(self, method: str, params: dict[str, Any], stamp: Stamp, progress: ProgressFnT | None = None) -> Any:
        """Send one request and return its `result` (unchecked JSON). Raises `NotSent` when nothing of
        it was written (the connection is already closed: the child exited, its stdin is closed)."""
        if self._send is None:
            raise NotSent("the connection to the server is closed (its process exited or is restarting)")
        pending, line = self._register(method, params, stamp, progress)
        try:
            await self._send(line)
        except NotSent:
            del self._waiting[pending.ident]  # nothing of it was written: nothing to cancel
            raise
        except BaseException:
            del self._waiting[pending.ident]
            await self._cancel(pending.ident, stamp)  # the line may be out: its answer is not wanted
            raise
        return await self.result(pending)

    def send_now(self, method: str, params: dict[str, Any], stamp: Stamp, progress: ProgressFnT,
                 on_answer: Callable[[dict[str, Any] | None], None]) -> Pending | None:
        """Send one request without waiting, if the pipe can take it at once (else None, nothing
        sent). `on_answer(message)` is called in the callback that reads the answer (None: the
        connection closed); then `forget` it, or `await result(pending)` for what `request` returns."""
        if self._write_now is None:
            return None
        pending, line = self._register(method, params, stamp, progress, on_answer)
        if not self._write_now(line):
            del self._waiting[pending.ident]
            return None
        return pending

    def forget(self, pending: Pending) -> None:
        """Stop tracking a request whose answer was taken by its `on_answer`."""
        self._waiting.pop(pending.ident, None)

    async def result(self, pending: Pending) -> Any:
        """Wait for a sent request's answer and return its `result`; abandoning the wait tells the child."""
        pending.on_answer = None
        try:
            answer = await pending.answer
        except BaseException:
            if not pending.answer.done() or pending.answer.cancelled():
                await self._cancel(pending.ident, pending.stamp)
            raise
        finally:
            self._waiting.pop(pending.ident, None)
        if answer is None:
            raise ConnectionLost()
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            code = error.get("code")
            message = error.get("message")
            raise ErrorAnswer(code=code if isinstance(code, int) else INTERNAL_ERROR,
                              message=str(message) if message not in (None, "") else "(an error without a message)",
                              data=error.get("data"))
        return answer.get("result")

    async def _cancel(self, ident: str, stamp: Stamp) -> None:
        """Tell the child an abandoned request's answer is no longer wanted (best effort)."""
        send = self._send
        if send is None:
            return
        data: dict[str, Any] = {"method": "notifications/cancelled", "params": {"requestId": ident, "reason": "abandoned by the hub"}}
        stamp(data, {})
        with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_GRACE_S):
            try:
                await send(json_line({"jsonrpc": "2.0", **data}))
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                logger.debug("could not send notifications/cancelled: %s", exc)


async def _report(progress: ProgressFnT, params: dict[str, Any]) -> None:
    value, total, message = params.get("progress"), params.get("total"), params.get("message")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    try:
        # Numbers pass as the child sent them: its integer progress stays an integer (issue #19 item 8).
        await progress(value, total if isinstance(total, (int, float)) and not isinstance(total, bool) else None,
                       message if isinstance(message, str) else None)
    except Exception:  # boundary: a failing progress sink must not stop the child's reader
        logger.exception("progress callback raised")
