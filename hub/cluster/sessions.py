"""Portable 2025-11-25 sessions: any replica continues a session another one opened.

`PortableSessionManager` is the hub's `PrincipalSessionManager` whose session ids are sealed
(`hub.cluster.sealing`): the id of a new session is minted from its `initialize` request, so it
carries the negotiated version, the client's initialize params and the principal it is bound to.
A request whose id this replica does not hold is *adopted*: the id is opened, its principal must
be the requester's (otherwise 404, exactly as for an unknown id — a replayed or forged id tells the
caller nothing), and a session is started under that same id with the handshake already done.

Why sealed ids rather than Redis: nothing to look up per request, so no new failure mode and no
round trip; the state is small and fixed at `initialize`. What it does not carry (per-session
state the hub keeps in memory, such as the tools a `search_tools` session found, and a GET stream)
starts afresh on the adopting replica — except the log level and resource subscriptions, which
travel through Redis (`hub.cluster.session_state`, told of each connection by `on_connection`), and
tasks, which any replica answers by asking the one holding them (`hub.cluster.tasks`).

A session ends for every replica only by its own end (`hub.cluster.ended_sessions`): its client
DELETEd it, or the API key that opened it was revoked or expired. Its id answers 404 from then on —
on the replica that ended it at once, on the others once they look (before adopting the id; a
replica holding it sweeps its sealed sessions every `ENDED_SWEEP_S`) when `hub.cluster.redis_url` is
set. Without Redis, another replica could continue it until it is older than `session_max_age_s`.

A replica's *copy* of a session is its own business: closed when idle here
(`hub.http.session_idle_timeout_s`), evicted to make room under this replica's caps, or released by
a JWT's expiry seen here (the client may have refreshed it on another replica), the copy just goes,
with its in-memory state, and the id is adopted again by the next request that brings it — here or
anywhere. Sharing those as ends killed sessions clients were using on other replicas (outside
review, cluster round 18 #1). So with sealed ids a session lives until its client ends it, its key
ends, or `session_max_age_s`; the idle timeout bounds only how long a replica keeps an unused copy.

What is sealed is what adoption needs (`sealable_params`): the version, the client's capabilities
and its name, version and title — not its icons (a `data:` URI easily passes the id's 4096 characters;
outside review, cluster round 18 #8: such a session silently got a random id that every other replica
answered 404). An `initialize` whose capabilities alone are too big to seal is refused, saying so.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import anyio
from anyio.abc import TaskStatus
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager, _error_response, _send_and_report_status
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp_types import InitializeRequestParams
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from hub.cluster.ended_sessions import EndedSessions
from hub.cluster.sealing import MAX_ID_CHARS, PREFIX, SessionSealer, SessionState
from hub.cluster.session_state import copy_closed, copy_opened
from hub.cluster.signing import session_secrets
from hub.frontends.http.http_sessions import PrincipalSessionManager, buffered, refusal_response
from hub.session_ledger import SessionRefused

logger = logging.getLogger("hub.cluster")
_NEXT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mcp_hub_next_session_id", default=None)
ENDED_SWEEP_S = 2.0
"""How often a replica looks whether sessions it holds were ended on another (with Redis)."""


def _owner(requestor: AuthorizationContext | None) -> tuple[str | None, str | None, str | None] | None:
    return (requestor["client_id"], requestor["issuer"], requestor["subject"]) if requestor is not None else None


def _requestor(scope: Scope) -> AuthorizationContext | None:
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


class _ChosenIds(StreamableHTTPSessionManager):
    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        """The SDK's admission, with the session id chosen by the caller (`_NEXT_ID`) when set."""
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = _NEXT_ID.get() or uuid4().hex
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id, is_json_response_enabled=self.json_response, event_store=self.event_store,
            security_settings=self.security_settings, retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport


class PortableSessionManager(PrincipalSessionManager, _ChosenIds):
    """Sessions whose ids any replica sharing `hub.cluster.session_secrets` can continue."""

    def __init__(self, app: Any, ledger: Any, sealer: SessionSealer, ended: EndedSessions | None = None,
                 **options: Any) -> None:
        super().__init__(app, ledger, **options)
        self.sealer = sealer
        self.ended = ended if ended is not None else EndedSessions(None)
        self.on_connection: Callable[[Connection, bool], Awaitable[None]] | None = None
        """Told of each connection this replica serves a session on (True: adopted), before it serves a
        request: its per-session state kept in Redis comes with it (`hub.cluster.session_state`)."""

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with super().run():
            if self.ended.shared and self._task_group is not None:
                self._task_group.start_soon(self._sweep_ended)
            try:
                yield
            finally:
                if self.ended.unshared:  # an end a Redis outage kept back: one last write before this replica goes
                    await self.ended.flush()
                await self.ended.aclose()

    async def _sweep_ended(self) -> None:
        """End the sealed sessions held here that another replica ended (DELETE, key revoked); first write
        the ends a Redis outage kept from it."""
        while True:
            await anyio.sleep(ENDED_SWEEP_S)
            await self.ended.flush()
            held = {sid: transport for sid, transport in self._server_instances.items() if sid.startswith(PREFIX)}
            for session_id in await self.ended.ended_among(list(held)):
                logger.info("ending a session another replica ended")
                if (expires_at := self._expiry(session_id)) is not None:
                    # Remembered here too: Redis may lose the record (a restart without persistence, a
                    # failover, an eviction), and this replica would then adopt the id again (outside
                    # review, cluster round 12: a DELETEd session answered 200 after Redis restarted).
                    self.ended.remember(session_id, expires_at)
                await held[session_id].terminate()

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        if session_id is not None and scope.get("method") == "DELETE":
            await self._delete(session_id, scope, receive, send)
            return
        await self._route(session_id, scope, receive, send)

    async def _delete(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A client ends its session: once answered 2xx, its id is ended for every replica."""
        status: list[int] = []

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self._route(session_id, scope, receive, noting)
        if status and status[0] < 300:
            await self._ended_now(session_id)

    def _expiry(self, session_id: str) -> float | None:
        """Until when `session_id` could be opened (None: it is not a sealed id of ours)."""
        state = self.sealer.open(session_id)
        return state.issued_at + self.sealer.max_age_s if state is not None else None

    async def _ended_now(self, session_id: str) -> None:
        if (expires_at := self._expiry(session_id)) is not None:
            await self.ended.end(session_id, expires_at)

    async def _end_for_good(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        """The session's own end (its API key revoked or expired): for every replica, not only this copy."""
        expires_at = self._expiry(session_id)
        if expires_at is not None:  # before the id is forgotten here, so no request adopts it in between
            self.ended.remember(session_id, expires_at)
        await super()._end_for_good(session_id, transport)
        if expires_at is not None:
            with anyio.CancelScope(shield=True):
                await self.ended.share(session_id, expires_at)

    async def adoptable(self, session_id: str, scope: Scope) -> bool:
        """Whether a request (`scope`) naming `session_id`, which this replica does not hold, would continue
        it here: an id of ours, not ended, bound to the requester."""
        state = self.sealer.open(session_id)
        return state is not None and state.owner == _owner(_requestor(scope)) and not await self.ended.ended(session_id)

    async def _route(self, session_id: str | None, scope: Scope, receive: Receive, send: Send) -> None:
        if session_id is None and scope.get("method") == "POST":
            body, receive = await buffered(receive)
            params = _initialize_params(body)
            if params is not None:
                requested = params.get("protocolVersion")
                version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
                state = SessionState(version, sealable_params(params), _owner(_requestor(scope)), time.time())
                sealed = self.sealer.seal(state)
                if len(sealed) > MAX_ID_CHARS:
                    await _unsealable(body, params, len(sealed))(scope, receive, send)
                    return
                token = _NEXT_ID.set(sealed)
                try:
                    await super()._handle_stateful_request(scope, receive, send)
                finally:
                    _NEXT_ID.reset(token)
                return
        elif session_id is not None and session_id not in self._server_instances:
            state = self.sealer.open(session_id)
            if state is not None and await self.ended.ended(session_id):
                self.ended.remember(session_id, state.issued_at + self.sealer.max_age_s)  # found in Redis: kept here too
                await _error_response("Session not found", 404)(scope, receive, send)
                return
            if state is not None:
                await self._adopt(session_id, state, scope, receive, send)
                return
        await super()._handle_stateful_request(scope, receive, send)

    async def _adopt(self, session_id: str, state: SessionState, scope: Scope, receive: Receive, send: Send) -> None:
        """Continue a session another replica opened (or this one, before a restart)."""
        requestor = _requestor(scope)
        if state.owner != _owner(requestor):
            logger.warning("refusing a sealed session id presented by another principal than the one it is bound to")
            await _error_response("Session not found", 404)(scope, receive, send)
            return
        try:
            params = InitializeRequestParams.model_validate(state.client_params, by_name=False)
        except ValueError:
            await _error_response("Session not found", 404)(scope, receive, send)
            return
        async with self._session_creation_lock:
            if session_id in self._server_instances:  # adopted meanwhile by a concurrent request
                transport = None
            else:
                token = _NEXT_ID.set(session_id)
                try:
                    transport = self._admit_session(requestor)
                except SessionRefused as refused:
                    await refusal_response(refused)(scope, receive, send)
                    return
                finally:
                    _NEXT_ID.reset(token)
                if transport is None:
                    await _error_response("Too many open sessions", 503)(scope, receive, send)
                    return
        if transport is None:
            await super()._handle_stateful_request(scope, receive, send)
            return
        logger.info("continuing a session opened elsewhere (protocol %s)", state.protocol_version)
        await self._serve_adopted(transport, state.protocol_version, params, scope, receive, send)

    async def _serve_opening_request(self, http_transport: StreamableHTTPServerTransport, scope: Scope,
                                     receive: Receive, send: Send) -> None:
        """The SDK's, with the connection made here, so `on_connection` learns of it (`_serve`)."""
        await self._serve(http_transport, None, None, scope, receive, send)

    async def _serve_adopted(self, transport: StreamableHTTPServerTransport, version: str,
                             params: InitializeRequestParams, scope: Scope, receive: Receive, send: Send) -> None:
        """As the SDK's `_serve_opening_request`, with the connection born initialized."""
        await self._serve(transport, version, params, scope, receive, send)

    async def _serve(self, transport: StreamableHTTPServerTransport, version: str | None,
                     params: InitializeRequestParams | None, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the session's connection (born initialized when adopted: `version` and `params` given),
        tell `on_connection` of it before it serves anything, and let the transport answer the request."""
        session_id = transport.mcp_session_id
        assert session_id is not None

        async def run_server(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            async with transport.connect() as (read_stream, write_stream):
                task_status.started()
                connection: Connection | None = None
                try:
                    dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
                        read_stream, write_stream, inline_methods=frozenset({"initialize"}))
                    connection = Connection.for_loop(dispatcher, session_id=session_id, protocol_version_hint=version)
                    if version is not None:
                        connection.client_params = params
                        connection.protocol_version = version
                        connection.initialized.set()
                    copy_opened(connection, transport)  # another replica's ask about it counts as use (in_use)
                    if self.on_connection is not None:  # in a copy of the request's context: its caller is known
                        await self.on_connection(connection, version is not None)
                    with transport.idle_scope or anyio.CancelScope():
                        await serve_connection(self.app, dispatcher, connection=connection,
                                               lifespan_state=self._lifespan_state)
                except Exception:
                    logger.exception("session crashed" if version is None else "adopted session crashed")
                finally:
                    if connection is not None:
                        copy_closed(connection)
                    await self._discard_session(session_id, transport)

        established = False
        try:
            assert self._task_group is not None
            await self._task_group.start(run_server)
            status = await _send_and_report_status(transport.handle_request, scope, receive, send)
            established = status is not None and status < 400
        finally:
            if not established:
                await self._discard_session(session_id, transport)


MAX_INFO_CHARS = 200
"""Of each clientInfo string sealed (name, version, title: shown in logs, never checked)."""


def sealable_params(params: dict[str, Any]) -> dict[str, Any]:
    """What adopting a session needs of its `initialize` params: the version asked, the capabilities (which
    server→client requests the hub may relay) and the client's name, version and title. Not its icons,
    description or website (bulky, and nothing the hub uses), nor `_meta`: so a client's `data:` icon
    does not make the id too long to seal. The replica that took the `initialize` keeps it whole."""
    kept = {key: params[key] for key in ("protocolVersion", "capabilities") if key in params}
    info = params.get("clientInfo")
    if isinstance(info, dict):
        kept["clientInfo"] = {key: value[:MAX_INFO_CHARS] if isinstance(value, str) else value
                              for key in ("name", "version", "title") if (value := info.get(key)) is not None}
    return kept


def _unsealable(body: bytes, params: dict[str, Any], length: int) -> JSONResponse:
    """The refusal of an `initialize` too big to seal: a session on one replica only would answer 404 from
    every other one the balancer picks, so the client is told now, with what to shorten."""
    capabilities = len(json.dumps(params.get("capabilities", {}), separators=(",", ":")))
    message = (f"initialize refused: this hub runs as several replicas, and carries each session in its "
               f"Mcp-Session-Id, which would be {length} characters (at most {MAX_ID_CHARS}); the client's "
               f"capabilities take {capabilities} bytes as JSON. Declare fewer or smaller (experimental) "
               "capabilities, or ask the operator to serve this client from a hub without "
               "hub.cluster.session_secrets")
    logger.warning("refused an initialize whose capabilities (%d bytes) are too big to seal into a session id",
                   capabilities)
    try:
        request_id = json.loads(body).get("id")
    except ValueError:
        request_id = None
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": message}},
                        status_code=400)


def _initialize_params(body: bytes) -> dict[str, Any] | None:
    """The params of an `initialize` request body, or None for anything else."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("method") == "initialize" and isinstance(message.get("params"), dict):
        return message["params"]
    return None


def session_manager(server: Any, ledger: Any, cluster: Any, **options: Any) -> PrincipalSessionManager:
    """A `PortableSessionManager` when session secrets are configured (`hub.cluster.session_secrets`,
    else `$MCP_HUB_SESSION_SECRETS`, comma-separated), else the one-replica `PrincipalSessionManager`."""
    secrets = session_secrets(cluster.session_secrets)
    if not secrets:
        return PrincipalSessionManager(server, ledger, **options)
    manager = PortableSessionManager(server, ledger, SessionSealer(secrets, cluster.session_max_age_s),
                                     EndedSessions(cluster.redis_url), **options)
    hub, caller = getattr(server, "relay_hub", None), getattr(server, "relay_caller", None)
    carried = getattr(getattr(hub, "cluster_notify", None), "sessions", None)  # with `hub.cluster.redis_url`
    if carried is not None and caller is not None:  # log level and subscriptions travel with the session
        manager.on_connection = lambda connection, adopted: carried.hold(connection, caller(), adopted)
    return manager
