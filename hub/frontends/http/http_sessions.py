"""HTTP sessions held per principal: the SDK's session manager and SSE endpoint, with a ledger.

`PrincipalSessionManager` is the SDK's `StreamableHTTPSessionManager` with admission and
discarding hooked into a `SessionLedger` (the SDK's own hub-wide cap is switched off: the
ledger's caps replace it). A session is idle when the SDK's own idle countdown is running (no
request in flight, no open GET stream); closing one cancels that countdown's scope, which ends
the session exactly as an idle expiry would. Legacy SSE sessions are held for as long as their
stream is open, so they count against the same caps but are never idle.

Both kinds end at once, open streams and all, when the credential that opened them is revoked or
expires (`hub.auth.credential_watch`, via `SessionLedger.watch`). With portable sessions
(`hub.cluster.sessions`) only an API key's end is the session's end on every replica (`_end_for_good`:
the key store is shared); a JWT's expiry seen here, an idle expiry and an eviction release this
replica's copy only, as the client may go on elsewhere (with a refreshed JWT, on another replica).

Unauthenticated requests never reach these: with auth on, the bearer check answers 401 first.
With auth off every caller is the same principal (`ANONYMOUS`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.session_ledger import ANONYMOUS, Owner, SessionLedger, SessionRefused

logger = logging.getLogger("hub.http")

SESSION_LIMIT_ERROR = -32000
"""JSON-RPC server-error code in the body of a 429/503 session refusal."""


def owner_of(scope: Scope) -> Owner:
    """The principal a request speaks for, as the SDK identifies a session's creator."""
    user = scope.get("user")
    return _owner(authorization_context(user)) if isinstance(user, AuthenticatedUser) else ANONYMOUS


def _owner(context: AuthorizationContext | None) -> Owner:
    return (context["client_id"], context["issuer"], context["subject"]) if context is not None else ANONYMOUS


def refusal_response(refused: SessionRefused) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": None,
            "error": {"code": SESSION_LIMIT_ERROR, "message": refused.message, "data": refused.data}}
    return JSONResponse(body, status_code=refused.status)


class PrincipalSessionManager(StreamableHTTPSessionManager):
    """Streamable HTTP sessions, capped per principal and in all by `ledger`."""

    def __init__(self, app: Any, ledger: SessionLedger, **options: Any) -> None:
        super().__init__(app, max_sessions=None, **options)
        self.ledger = ledger
        self._released: dict[str, Callable[[], None]] = {}
        """Per session: the release of its `CredentialWatch` hold."""

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        owner = owner_of(scope)
        if session_id is not None:
            self.ledger.touch(session_id, owner)
        try:
            await super()._handle_stateful_request(scope, receive, send)
        except SessionRefused as refused:  # raised by `_admit_session` before anything was created
            await refusal_response(refused)(scope, receive, send)
        finally:
            if session_id is not None:
                self.ledger.touch(session_id, owner)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        owner = _owner(requestor)
        self.ledger.make_room(owner)
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            session_id = transport.mcp_session_id
            self.ledger.add(session_id, owner, "streamable_http", lambda: _is_idle(transport),
                            lambda: self._close(session_id, transport))
            if self.ledger.watch is not None:  # ended, streams and all, once its credential is no longer valid
                token = get_access_token()
                whole = token is not None and (token.claims or {}).get("mcp_hub_kind") == "api_key"
                self._released[session_id] = self.ledger.watch.hold(
                    token, lambda: self._end_now(session_id, transport, whole), "Streamable HTTP session")
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self.ledger.remove(session_id)
        if (release := self._released.pop(session_id, None)) is not None:
            release()
        await super()._discard_session(session_id, transport)

    def _end_now(self, session_id: str, transport: StreamableHTTPServerTransport, whole: bool = False) -> None:
        """End a session at once, busy or not: its id answers 404 and its streams close. `whole`: the end is
        the session's own (an API key revoked or expired, as every replica's key store says), not only this
        copy's (a JWT expiry seen here: the client may have refreshed it on another replica)."""
        if self._task_group is not None:
            self._task_group.start_soon(self._end_for_good if whole else self._discard_session, session_id, transport)

    async def _end_for_good(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        """End the session itself (with one replica, the same as discarding it; see `hub.cluster.sessions`)."""
        await self._discard_session(session_id, transport)

    async def adoptable(self, session_id: str, scope: Scope) -> bool:
        """Whether this replica would continue `session_id`, which it does not hold, for `scope`'s requester:
        never with one replica's random ids (`hub.cluster.sessions` adopts sealed ones)."""
        return False

    def _close(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        """End an idle session now, as its idle expiry would: its id answers 404 here from then on, unless
        it is a sealed one (`hub.cluster.sessions`), whose next request adopts it again — a copy made room
        for, not the session's end."""
        logger.info("closing an idle session to make room under hub.http session limits")
        if transport.idle_scope is not None:
            transport.idle_scope.cancel()
        elif self._task_group is not None:
            self._task_group.start_soon(self._discard_session, session_id, transport)


def _is_idle(transport: StreamableHTTPServerTransport) -> bool:
    """The SDK runs a session's idle countdown (a finite deadline) only while nothing is in flight."""
    scope = transport.idle_scope
    return scope is not None and (scope.cancel_called or scope.deadline != math.inf)


def sse_endpoint(sse: SseServerTransport, server: Any, ledger: SessionLedger) -> ASGIApp:
    """`GET /sse`: one legacy SSE session per open stream, counted in `ledger` while it is open."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        owner = owner_of(scope)
        try:
            ledger.make_room(owner)
        except SessionRefused as refused:
            await refusal_response(refused)(scope, receive, send)
            return
        held = f"sse-{uuid4().hex}"
        ledger.add(held, owner, "sse", lambda: False, lambda: None)
        sent = _Tracked(send)
        with anyio.CancelScope() as stream:
            release = ledger.watch.hold(get_access_token(), stream.cancel, "legacy SSE stream") if ledger.watch else None
            try:
                async with sse.connect_sse(scope, receive, sent) as (read, write):
                    await server.run(read, write, server.create_initialization_options())
            finally:
                ledger.remove(held)
                if release is not None:
                    release()
        if stream.cancelled_caught and sent.started and not sent.finished:
            await send({"type": "http.response.body", "body": b"", "more_body": False})  # the stream's orderly end

    return endpoint


class _Tracked:
    """An ASGI `send` that remembers whether the answer started and ended."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = self.finished = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)


async def buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that replays it (then passes through)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            replay: list[Message] = [message]
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            replay = []
            break
    body = b"".join(chunks)
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *replay]

    async def replaying() -> Message:
        return pending.pop(0) if pending else await receive()

    return body, replaying
