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
- that session negotiated 2025-11-25, its client declared no sampling, elicitation or roots (a
  server's requests to it go through the SDK's session, `hub.relay`) and asked for no log messages
  (`logging/setLevel`: its call's messages go on the call's event stream, `hub.relay.logs`);
- the headers are what the SDK serves, judged as it judges them: a JSON `Content-Type`, an `Accept`
  its own parser reads as both JSON and SSE, no deciding header given twice, a
  `Mcp-Protocol-Version` header, if sent, the session's;
- the body is one plain `tools/call` without a progress token (progress goes out as SSE events),
  not a search-mode meta-tool;
- tracing is off (with it on, the SDK's path parents the call's span on the request's trace context),
  and so is `hub.fast_calls: false` (which turns both fronts' fast paths off).
A 2026-07-28 (stateless) POST is taken when it is one plain `tools/call` whose envelope and
`Mcp-Protocol-Version` / `Mcp-Method` / `Mcp-Name` / `Mcp-Param-*` headers pass the SDK's own checks
(`mcp.shared.inbound`: any rejection is the SDK's to answer), whose client declares no sampling,
elicitation or roots and asks for no log messages. As on the SDK's path: a disconnect cancels it,
its `per_client` servers give it a session of its own for this request only, the answer is
`application/json` with the hub's `serverInfo` stamp, and a call still running after
`hub.http.keepalive_s` (15 s, the SDK's interval) turns the response into an event stream with
keep-alive comments (so a proxy's idle timeout does not cut it) that ends with the answer. A
message holding `result` or `error` besides its method is left to the SDK (which reads it as a
response), in both eras.

A `notifications/cancelled` from the session's own requester naming a call this path holds cancels
it (202, as the SDK answers a notification), and the call's POST is answered `-32800 Request
cancelled`, as the SDK's 2025 transport ends a cancelled request. The end of its session (DELETE,
expiry, eviction) cancels it too; its POST then ends with an empty event stream, as the SDK's
streams end. A request id reused while a fast-path call holds it is refused (`-32600`), as on the
stdio front (the SDK's own path does not check); ids correlate for cancels as the SDK's dispatcher
correlates them ("7" names the call 7). While a call runs the session counts as busy (its idle
countdown is suspended, as the transport does for requests it serves).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.inbound import (InboundLadderRejection, classify_inbound_request, find_duplicated_routing_header,
                                find_invalid_x_mcp_header, validate_mcp_param_headers, x_mcp_header_map)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, INTERNAL_ERROR, INVALID_REQUEST, LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from hub import __version__
from hub.auth.principal import Principal, current_principal
from hub.calls.drivers import ExpressCall, task_of
from hub.downstream.owners import bind_owner
from hub.frontends.http.http_heads import SESSION_HEADER, Heads
from hub.frontends.http.http_replies import SSE, Busy, encoded, keep_alive_until, send_json, send_last_event, status_of
from hub.frontends.http.http_sessions import buffered, owner_of
from hub.frontends.plain_calls import (HANDSHAKE_VERSION, PlainCall, error_reply, offers_server_requests, plain_call,
                                       result_reply)
from hub.frontends.stdio.json_lines import json_line, json_object
from hub.frontends.stdio.line_errors import duplicate_message, id_key
from hub.hub import Hub, UnknownTool
from hub.relay.capabilities import declares_server_requests
from hub.relay.requests import REQUEST_CANCELLED
from hub.search.meta import META_NAMES, search_mode_for
from hub.unknown_tool import unknown_tool_result
from hub.wire import ToolResult

logger = logging.getLogger("hub.http")

Entry = ExpressCall | asyncio.Task[Any]


class _RequestOwner:
    """The owner of a 2026-07-28 call's per-client downstream sessions: this one request (`bind_owner`)."""

    __slots__ = ("__weakref__",)


class _Held:
    """A call a 2025-11-25 session holds on this path."""

    __slots__ = ("answer", "by_client", "entry", "request_id")

    def __init__(self, entry: Entry, request_id: int | str, answer: asyncio.Future[ToolResult]) -> None:
        self.entry = entry
        self.request_id = request_id
        """As the client sent it (cancels correlate as the SDK's dispatcher correlates ids)."""
        self.answer = answer
        self.by_client = False
        """Cancelled by the client's `notifications/cancelled` (not by its session's end)."""

    def cancel(self) -> None:
        _cancel_soon(self.entry, self.answer)


class HttpToolCalls:
    """ASGI: answers plain `tools/call` POSTs (see the module's docstring); everything else goes to
    `app` (the SDK's `StreamableHTTPASGIApp` over `manager`)."""

    def __init__(self, app: ASGIApp, hub: Hub, manager: StreamableHTTPSessionManager) -> None:
        self.app = app
        self._hub = hub
        self._manager = manager
        server = manager.app
        self._server = server
        self._connections = server.session_connections  # session id → its SDK connection (`hub.frontends.server`)
        self._view = server.view  # a profile's view, or None for the whole catalog
        self._server_info = {"name": hub.config.hub.name, "version": __version__}
        self._keepalive_s = hub.config.hub.http.keepalive_s
        self._param_headers: dict[str, tuple[Any, bool]] = {}
        """Tool name → (its input schema, whether it declares `Mcp-Param-*` headers): `_declares_param_headers`."""
        self._in_flight: dict[str, dict[str, _Held]] = {}
        """Session id → (`id_key` of the request id → the call held here); a session is listed only while it holds one."""
        self._ledger = getattr(manager, "ledger", None)  # the per-principal session caps (`http_sessions`)
        if self._ledger is not None:  # a session's end (DELETE, expiry, eviction) cancels its calls, as the SDK's does
            self._ledger.on_end.append(self._session_ended)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and self._hub.tracing is None:
            heads = Heads(scope)
            if heads.usable:
                if heads.version in MODERN_PROTOCOL_VERSIONS:
                    await self._modern(scope, receive, send, heads.version)
                    return
                if heads.session_id is not None and heads.version in (None, HANDSHAKE_VERSION):
                    await self._handshake(scope, receive, send, heads.session_id)
                    return
        await self.app(scope, receive, send)

    # -- 2025-11-25 sessions --------------------------------------------------------------------

    async def _handshake(self, scope: Scope, receive: Receive, send: Send, session_id: str) -> None:
        transport = self._manager._server_instances.get(session_id)  # noqa: SLF001
        connection = self._connections.get(session_id)
        if (transport is None or connection is None or connection.protocol_version != HANDSHAKE_VERSION
                or not connection.initialized.is_set() or declares_server_requests(connection.client_capabilities)
                or self._hub.log_relay.listens(connection)):  # its call's log messages go on the call's stream
            await self.app(scope, receive, send)
            return
        body, receive = await buffered(receive)
        # A cancel may be spelt with escapes (`notifications\/cancelled`): on a session with calls here, read every body.
        message = json_object(body) if b'"tools/call"' in body or session_id in self._in_flight else None
        if message is not None and not _also_answer(message):
            call = plain_call(message)
            if call is not None and call.progress_token is None:
                principal = current_principal(self._hub.access.local)
                name = self._exposed(call.name, principal, HANDSHAKE_VERSION)
                if name is not None and self._mine(scope, session_id, transport):
                    await self._answer_in_session(scope, session_id, transport, call, name, principal, send)
                    return
            elif self._mine(scope, session_id, transport) and self._cancel(session_id, message):
                await send({"type": "http.response.start", "status": 202, "headers": [(SESSION_HEADER, session_id.encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    def _mine(self, scope: Scope, session_id: str, transport: StreamableHTTPServerTransport) -> bool:
        """The session is the requester's (the manager's own check) and not ending."""
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        idle = transport.idle_scope
        return (requestor == self._manager._session_owners.get(session_id)  # noqa: SLF001
                and not transport.is_terminated and (idle is None or not idle.cancel_called))

    async def _answer_in_session(self, scope: Scope, session_id: str, transport: StreamableHTTPServerTransport,
                                 call: PlainCall, name: str, principal: Principal, send: Send) -> None:
        key = id_key(call.request_id)
        headers = [(SESSION_HEADER, session_id.encode())]
        if key in self._in_flight.get(session_id, ()):
            await send_json(send, json_line(error_reply(call.request_id, INVALID_REQUEST, duplicate_message(call.request_id))), headers)
            return
        owner = owner_of(scope)
        if self._ledger is not None:
            self._ledger.touch(session_id, owner)
        try:
            # A `per_client` server gives this session its own downstream session (`current_owner`).
            with Busy(transport), bind_owner(self._connections.get(session_id), principal=principal):
                entry, answer = self._start(call, name, principal)
                held_here = self._in_flight.setdefault(session_id, {})
                held = held_here[key] = _Held(entry, call.request_id, answer)
                try:
                    reply = await self._reply(call, entry, answer, principal, None)
                finally:
                    del held_here[key]
                    if not held_here:
                        del self._in_flight[session_id]
                if reply is None:
                    # Cancelled by the client: `-32800`, as the SDK's 2025 transport ends such a request, and as
                    # it does, in an event stream (the SDK's client drops an event that reaches it after it closed,
                    # where a late JSON answer fails its exit). Its session ended: no answer, as on the SDK's path.
                    cancelled = error_reply(call.request_id, REQUEST_CANCELLED, "Request cancelled") if held.by_client else None
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", SSE), (b"cache-control", b"no-cache"), *headers]})
                    await send_last_event(send, json_line(cancelled) if cancelled is not None else None)
                    return
                await send_json(send, await encoded(reply), headers)
        finally:
            if self._ledger is not None:
                self._ledger.touch(session_id, owner)

    def _session_ended(self, session_id: str) -> None:
        for held in list(self._in_flight.get(session_id, {}).values()):
            held.cancel()

    def _cancel(self, session_id: str, message: dict[str, Any]) -> bool:
        """Cancel the call `notifications/cancelled` names, if this path holds it. Ids correlate as the
        SDK's dispatcher correlates them (`coerce_request_id`: "7" names the call 7)."""
        if message.get("method") != "notifications/cancelled" or "id" in message:
            return False
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            return False
        wanted = coerce_request_id(request_id)
        for held in self._in_flight.get(session_id, {}).values():
            if coerce_request_id(held.request_id) == wanted:
                held.by_client = True
                held.cancel()
                return True
        return False

    # -- 2026-07-28 requests --------------------------------------------------------------------

    async def _modern(self, scope: Scope, receive: Receive, send: Send, version: str | None) -> None:
        body, receive = await buffered(receive)
        message = json_object(body) if b'"tools/call"' in body else None
        call = plain_call(message) if message is not None and not _also_answer(message) else None
        if call is None or call.progress_token is not None or not self._modern_plain(scope, message, call):
            await self.app(scope, receive, send)
            return
        principal = current_principal(self._hub.access.local)
        name = self._exposed(call.name, principal, version)
        if name is None:
            await self.app(scope, receive, send)
            return
        owner = _RequestOwner()
        try:
            with bind_owner(owner, principal=principal, stateless=True):  # its `per_client` sessions: lent (`SessionPool`)
                entry, answer = self._start(call, name, principal)
            watch = asyncio.get_running_loop().create_task(_disconnect(receive))
            watch.add_done_callback(lambda _: _cancel_soon(entry, answer))  # a disconnect cancels, as the SDK's does
            try:
                if not await keep_alive_until(answer, send, self._keepalive_s):  # an answer in time: one JSON response
                    reply = await self._reply(call, entry, answer, principal, self._server_info)
                    if reply is not None:
                        await send_json(send, await encoded(reply), [], status_of(reply))
                    return
                reply = await self._reply(call, entry, answer, principal, self._server_info)
                await send_last_event(send, await encoded(reply) if reply is not None else None)
            except asyncio.CancelledError:
                _cancel_soon(entry, answer)  # the POST itself was cancelled (the server is stopping)
                raise
            finally:
                watch.cancel()
        finally:
            self._hub.release_owner(owner)

    def _modern_plain(self, scope: Scope, message: Any, call: PlainCall) -> bool:
        """Whether the SDK would serve this request as it is: anything it would reject, or serve with
        more than a plain call (a server's requests, log messages), is left to it."""
        caps = call.meta.get(CLIENT_CAPABILITIES_META_KEY)
        if not isinstance(caps, dict) or offers_server_requests(caps) or LOG_LEVEL_META_KEY in call.meta:
            return False
        # The headers as Starlette's `Headers.items()` gives them to the SDK's own transport.
        items = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        if find_duplicated_routing_header(items) is not None:
            return False
        first: dict[str, str] = {}  # what `dict(headers)` gives (a repeated name keeps its first value), in one pass
        for name, value in items:
            first.setdefault(name, value)
        if isinstance(classify_inbound_request(message, headers=first), InboundLadderRejection):
            return False
        if call.arguments or any(name.startswith("mcp-param-") for name in first):
            schema = self._server.get_tool_input_schema(call.name)
            if schema is not None and self._declares_param_headers(call.name, schema) \
                    and validate_mcp_param_headers(schema, call.arguments or {}, Headers(scope=scope)) is not None:
                return False
        return True

    def _declares_param_headers(self, name: str, schema: Any) -> bool:
        """Whether `validate_mcp_param_headers` can reject anything for this schema: only a valid schema
        with an `x-mcp-header` property can. Walking the schema was a tenth of a plain call's cost here,
        so the answer is kept per tool while its schema object stays the same."""
        known = self._param_headers.get(name)
        if known is None or known[0] is not schema:
            if len(self._param_headers) >= 4096:
                self._param_headers.clear()
            declares = find_invalid_x_mcp_header(schema) is None and bool(x_mcp_header_map(schema))
            known = self._param_headers[name] = (schema, declares)
        return known[1]

    # -- shared ---------------------------------------------------------------------------------

    def _exposed(self, name: str, principal: Principal, protocol_version: str | None) -> str | None:
        """The hub-wide name to call, or None when the SDK's server must answer (a search meta-tool,
        a name outside this profile: both answered there exactly as decided; a name a server listed
        from memory may own: the SDK path waits for that server before judging the call)."""
        if (name in META_NAMES and search_mode_for(self._hub, principal, self._view)
                or self._hub.memory_servers_for(name, self._view is None)):
            return None
        # within its max_tools, counted as the tools/list of a client of `protocol_version`
        return self._view.resolve(name, principal, protocol_version) if self._view is not None else name

    def _start(self, call: PlainCall, name: str, principal: Principal) -> tuple[Entry, asyncio.Future[ToolResult]]:
        """Start the call on the express driver (else the awaiting one); the future of its result."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[ToolResult] = loop.create_future()
        hub = self._hub
        express = hub.start_express(name, call.arguments or {}, principal, lambda result: _settle(answer, result),
                                    lambda outcome: _run(loop, outcome, answer))
        if express is not None:
            return express, answer
        return _run(loop, hub.route_call(name, call.arguments, None, principal=principal, wire=True), answer), answer

    async def _reply(self, call: PlainCall, entry: Entry, answer: asyncio.Future[ToolResult], principal: Principal,
                     server_info: dict[str, str] | None) -> dict[str, Any] | None:
        """The JSON-RPC answer to send; None when the call was cancelled (by the client or its session's end)."""
        try:
            result = await answer
        except UnknownTool:  # or hidden: the same `not_found` result as the SDK's face gives
            result = unknown_tool_result(self._hub, call.name, principal, self._view)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                _cancel_soon(entry, answer)  # the POST itself was cancelled (the server is stopping)
                raise
            return None
        except Exception:  # boundary: like the SDK, internals never reach the wire
            logger.exception("tools/call %s failed inside the hub", call.name)
            return error_reply(call.request_id, INTERNAL_ERROR, "Internal server error")
        return result_reply(call.request_id, result, server_info)


def _settle(answer: asyncio.Future[ToolResult], result: ToolResult) -> None:
    if not answer.done():
        answer.set_result(result)


def _run(loop: asyncio.AbstractEventLoop, outcome: Coroutine[Any, Any, ToolResult],
         answer: asyncio.Future[ToolResult]) -> asyncio.Task[Any]:
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


def _also_answer(message: dict[str, Any]) -> bool:
    """A message holding `result` or `error` besides its method: the SDK's HTTP transport reads it
    as a response (and runs nothing), so it is left to the SDK."""
    return "result" in message or "error" in message


def _cancel_soon(entry: Entry, answer: asyncio.Future[ToolResult]) -> None:
    """Cancel a call that has not been answered, once its task has started: a task cancelled before
    its first step would skip the clean-up that tells the server (`notifications/cancelled`) and the
    audit log. An answered call is left alone: escalating a finished express call would run it again
    (a cancel or a session's end can arrive between its answer and this path's bookkeeping)."""
    if not answer.done():
        asyncio.get_running_loop().call_soon(task_of(entry).cancel)


async def _disconnect(receive: Receive) -> None:
    """Returns when the client has gone (the body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
