"""The HTTP front's fast path for `tools/call`, as the stdio front has one (`hub.frontends.stdio.stdio_calls`).

Through the SDK's Streamable HTTP stack, one relayed call cost the hub more than the tool's own server
took to answer it: the POST's JSON-RPC message is validated into models, put on the session's message
stream, dispatched to a handler task, its result validated and serialised again, and written as an
SSE event. This ASGI layer sits just in front of the SDK's session manager and answers a *plain* call
(`hub.frontends.plain_calls`) of an established 2025-11-25 session itself: the body is read with
orjson, `Hub.start_express` runs the whole policy chain (access, argument validation, audit, rate
limit, deadline, retry, breaker, bulkhead) and sends, and the answer goes back as one
`application/json` response (which the transport allows for any request: "the server MUST either
return Content-Type: text/event-stream … or Content-Type: application/json").

It takes a POST only when every one of these holds, and otherwise leaves the request, body included,
to the SDK unchanged:
- the session id names a session this replica's manager holds, of the requester (the manager's own
  check), not ending, and whose handshake this hub saw (the session's connection is known);
- that session negotiated 2025-11-25 and its client declared no sampling, elicitation or roots (a
  server's requests to it go through the SDK's session, `hub.relay`);
- `Content-Type` is JSON, `Accept` names both JSON and SSE (the SDK refuses anything else), a
  `Mcp-Protocol-Version` header, if sent, is the session's;
- the body is one plain `tools/call` without a progress token (progress goes out as SSE events),
  not a search-mode meta-tool;
- tracing is off (with it on, the SDK's path parents the call's span on the request's trace context).
2026-07-28 (stateless) requests always go to the SDK, which checks their `Mcp-*` headers.

A `notifications/cancelled` naming a call this path holds cancels it (202, as the SDK answers a
notification), and so does the end of its session (DELETE, expiry, eviction); the cancelled call's
own POST then ends with an empty 200 event stream: no JSON-RPC answer, as MCP asks of a cancelled
request. While a call runs the session counts as busy (its idle
countdown is suspended, as the transport does for requests it serves).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.auth.principal import Principal, current_principal
from hub.calls.drivers import ExpressCall
from hub.downstream.sessions import bind_owner
from hub.frontends.http.http_sessions import buffered, owner_of
from hub.frontends.plain_calls import HANDSHAKE_VERSION, PlainCall, error_reply, plain_call, result_reply
from hub.frontends.stdio.json_lines import encode_off_loop, is_big, json_line, json_object
from hub.frontends.stdio.line_errors import duplicate_message, id_key
from hub.hub import Hub, UnknownTool
from hub.relay.requests import declares_server_requests
from hub.search.meta import META_NAMES, search_mode_for
from hub.unknown_tool import unknown_tool_result
from hub.wire import ToolResult

logger = logging.getLogger("hub.http")

_SESSION = MCP_SESSION_ID_HEADER.lower().encode()
_VERSION = b"mcp-protocol-version"
_JSON = b"application/json"
_SSE = b"text/event-stream"


class HttpToolCalls:
    """ASGI: answers plain `tools/call` POSTs of established handshake-era sessions; everything else
    goes to `app` (the SDK's `StreamableHTTPASGIApp` over `manager`)."""

    def __init__(self, app: ASGIApp, hub: Hub, manager: StreamableHTTPSessionManager) -> None:
        self.app = app
        self._hub = hub
        self._manager = manager
        server = manager.app
        self._connections = server.session_connections  # session id → its SDK connection (`hub.frontends.server`)
        self._view = server.view  # a profile's view, or None for the whole catalog
        self._in_flight: dict[tuple[str, str], ExpressCall | asyncio.Task[Any]] = {}
        ledger = getattr(manager, "ledger", None)
        if ledger is not None:  # a session's end (DELETE, expiry, eviction) cancels its calls, as the SDK's does
            ledger.on_end.append(self._session_ended)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = _session_of(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        transport = self._manager._server_instances.get(session_id) if session_id is not None else None  # noqa: SLF001
        if transport is None or self._hub.tracing is not None or not self._headers_allow(scope, session_id):
            await self.app(scope, receive, send)
            return
        body, receive = await buffered(receive)
        message = json_object(body) if b'"tools/call"' in body or b'"notifications/cancelled"' in body else None
        if message is not None:
            call = plain_call(message)
            if call is not None and call.progress_token is None:
                principal = current_principal(self._hub.access.local)
                name = self._exposed(call.name, principal)
                if name is not None and self._mine(scope, session_id, transport):
                    await self._answer(scope, session_id, transport, call, name, principal, send)
                    return
            elif self._cancel(session_id, message):
                await send({"type": "http.response.start", "status": 202, "headers": [(_SESSION, session_id.encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    # -- which requests -------------------------------------------------------------------------

    def _headers_allow(self, scope: Scope, session_id: str) -> bool:
        content_type = accept = b""
        version: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == _VERSION:
                version = value
        connection = self._connections.get(session_id)
        return (connection is not None and connection.protocol_version == HANDSHAKE_VERSION
                and connection.initialized.is_set() and not declares_server_requests(connection.client_capabilities)
                and content_type.split(b";", 1)[0].strip().lower() == _JSON
                and _JSON in accept and _SSE in accept
                and (version is None or version.decode("latin-1") == HANDSHAKE_VERSION))

    def _mine(self, scope: Scope, session_id: str, transport: StreamableHTTPServerTransport) -> bool:
        """The session is the requester's (the manager's own check) and not ending."""
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        idle = transport.idle_scope
        return (requestor == self._manager._session_owners.get(session_id)  # noqa: SLF001
                and not transport.is_terminated and (idle is None or not idle.cancel_called))

    def _exposed(self, name: str, principal: Principal) -> str | None:
        """The hub-wide name to call, or None when the SDK's server must answer (a search meta-tool,
        a name outside this profile: both answered there exactly as the issue decided)."""
        if name in META_NAMES and search_mode_for(self._hub, principal, self._view):
            return None
        return self._view.resolve(name) if self._view is not None else name

    # -- one call -------------------------------------------------------------------------------

    async def _answer(self, scope: Scope, session_id: str, transport: StreamableHTTPServerTransport, call: PlainCall,
                      name: str, principal: Principal, send: Send) -> None:
        key = (session_id, id_key(call.request_id))
        if key in self._in_flight:
            await _send_json(send, session_id, json_line(error_reply(call.request_id, INVALID_REQUEST,
                                                                     duplicate_message(call.request_id))))
            return
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[ToolResult] = loop.create_future()
        hub = self._hub
        ledger = getattr(self._manager, "ledger", None)  # the per-principal session caps (`http_sessions`)
        if ledger is not None:
            ledger.touch(session_id, owner_of(scope))
        try:
            # A `per_client` server gives this session its own downstream session (`current_owner`).
            with _Busy(transport), bind_owner(self._connections.get(session_id)):
                express = hub.start_express(name, call.arguments or {}, principal, lambda result: _settle(answer, result),
                                            lambda outcome: _run(loop, outcome, answer))
                entry: ExpressCall | asyncio.Task[Any] = express if express is not None else _run(
                    loop, hub.route_call(name, call.arguments, None, principal=principal, wire=True), answer)
                if not answer.done():
                    self._in_flight[key] = entry
                try:
                    result = await answer
                except UnknownTool:  # or hidden: the same `not_found` result as the SDK's face gives
                    result = unknown_tool_result(hub, call.name, principal)
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        _task_of(entry).cancel()  # the POST itself was cancelled (the server is stopping)
                        raise
                    await _send_cancelled(send, session_id)  # the client cancelled it: no JSON-RPC answer
                    return
                except Exception:  # boundary: like the SDK, internals never reach the wire
                    logger.exception("tools/call %s failed inside the hub", name)
                    await _send_json(send, session_id, json_line(error_reply(call.request_id, INTERNAL_ERROR, "Internal server error")))
                    return
                finally:
                    self._in_flight.pop(key, None)
                reply = result_reply(call.request_id, result, None)
                await _send_json(send, session_id, await encode_off_loop(reply) if is_big(reply["result"]) else json_line(reply))
        finally:
            if ledger is not None:
                ledger.touch(session_id, owner_of(scope))

    def _session_ended(self, session_id: str) -> None:
        for key, entry in list(self._in_flight.items()):
            if key[0] == session_id:
                asyncio.get_running_loop().call_soon(_task_of(entry).cancel)

    def _cancel(self, session_id: str, message: dict[str, Any]) -> bool:
        """Cancel the call `notifications/cancelled` names, if this path holds it."""
        if message.get("method") != "notifications/cancelled" or "id" in message:
            return False
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            return False
        entry = self._in_flight.get((session_id, id_key(request_id)))
        if entry is None:
            return False
        # Cancelled once it has started (a task cancelled before its first step would skip the cleanup
        # that tells the server and the audit log).
        asyncio.get_running_loop().call_soon(_task_of(entry).cancel)
        return True


class _Busy:
    """While a call runs, its session is not idle: the transport's own accounting for the requests it serves."""

    __slots__ = ("_transport",)

    def __init__(self, transport: StreamableHTTPServerTransport) -> None:
        self._transport = transport

    def __enter__(self) -> None:
        transport = self._transport
        if transport.idle_scope is not None and transport._idle_timeout is not None:  # noqa: SLF001
            transport._requests_in_flight += 1  # noqa: SLF001
            transport.idle_scope.deadline = math.inf

    def __exit__(self, *_: object) -> None:
        transport = self._transport
        timeout = transport._idle_timeout  # noqa: SLF001
        if transport.idle_scope is not None and timeout is not None:
            transport._requests_in_flight -= 1  # noqa: SLF001
            if not transport._requests_in_flight:  # noqa: SLF001
                transport.idle_scope.deadline = anyio.current_time() + timeout


def _session_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _SESSION:
            return value.decode("latin-1")
    return None


def _settle(answer: asyncio.Future[ToolResult], result: ToolResult) -> None:
    if not answer.done():
        answer.set_result(result)


def _run(loop: asyncio.AbstractEventLoop, outcome: Any, answer: asyncio.Future[ToolResult]) -> asyncio.Task[Any]:
    """The awaiting driver's coroutine as a task whose end settles `answer` (result, error or cancel)."""
    task = loop.create_task(outcome)

    def settled(done: asyncio.Task[Any]) -> None:
        if answer.done():
            return
        if done.cancelled():
            answer.cancel()
        elif (exc := done.exception()) is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(done.result())

    task.add_done_callback(settled)
    return task


def _task_of(entry: ExpressCall | asyncio.Task[Any]) -> asyncio.Task[Any]:
    return entry.escalate() if isinstance(entry, ExpressCall) else entry


async def _send_json(send: Send, session_id: str, data: bytes | list[bytes | memoryview]) -> None:
    pieces = [data] if isinstance(data, bytes) else data
    length = sum(len(piece) for piece in pieces)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", _JSON), (b"content-length", str(length).encode()), (_SESSION, session_id.encode())]})
    for number, piece in enumerate(pieces):
        await send({"type": "http.response.body", "body": bytes(piece), "more_body": number < len(pieces) - 1})


async def _send_cancelled(send: Send, session_id: str) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", _SSE), (b"cache-control", b"no-cache"), (_SESSION, session_id.encode())]})
    await send({"type": "http.response.body", "body": b""})

