"""Per-client sessions of one downstream (issue #19 item 7; a mixin of
`hub.downstream.connection.Downstream`): which session a request uses, and how a session opened for
one upstream client is built — its server→client requests, log messages, resource updates and task
status notifications go to that client only (`hub.relay`).

Every use of a client's own session goes through `own_session` (calls, reads, prompts, completions,
tasks through `session()`; subscriptions and log levels directly), so a server's "session not found"
(HTTP 404, or a 4xx saying so: it restarted, or expired the session; `hub.downstream.session_lost`) ends that session on every path exactly as a child
exit or a stream end does (`SessionPool.end`: its subscriptions renewed on a new one) and is answered
as the retryable `session_ended` refusal (relay round 15: on the subscribe path it was neither)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp import Client
from mcp.client.extension import ClientExtension, NotificationBinding
from mcp.client.session import IncomingMessage
from pydantic import BaseModel, ConfigDict

from hub.config import ServerConfig
from hub.auth.principal import identity
from hub.errors import HubRefusal
from hub.downstream.owners import OwnerRef, counted_caller, current_caller, current_owner
from hub.downstream.session_lost import is_lost_answer, lost_why
from hub.downstream.sessions import SessionPool


class OwnedSessions:
    """`session()` and `_open_owned(owner)` (state and transports live on `Downstream`)."""

    config: ServerConfig
    name: str
    pool: SessionPool | None
    log: Any
    server_object: Any
    caller: Any
    owner_callbacks: Callable[[Any], dict[str, Any]]
    on_log: Callable[..., Awaitable[None]] | None
    on_resource_updated: Callable[..., Awaitable[None]] | None
    on_elicitation_complete: Callable[..., Awaitable[None]] | None
    on_progress: Callable[..., Awaitable[None]] | None
    on_task_status: Callable[..., Awaitable[None]] | None

    if TYPE_CHECKING:  # provided by `Downstream`
        def _session_transport(self, on_end: Callable[[str], None] | None = None,
                               on_lost: Callable[[str], None] | None = None) -> Any: ...
        def _client_over(self, transport: Any, on_message: Any, callbacks: dict[str, Any],
                         on_status: Callable[[Any], Awaitable[None]]) -> Client: ...
        async def ready_client(self) -> Client: ...
        def _lose(self, reason: str) -> None: ...

    # Provided by `Downstream` too: the shared session, and whether it is being reopened (`reopen`).
    _client: Client | None
    _lost: anyio.Event
    reopened: anyio.Event | None
    connect_timeout_s: float

    def reopen(self, why: str) -> None:
        """The server no longer knows the shared session (it restarted, or expired it: `why`): reconnect,
        and hold requests for the shared session until then (`reopened`) instead of refusing them."""
        if self._lost.is_set():
            return
        if self.reopened is None:
            self.reopened = anyio.Event()
        self._lose(f"the server no longer knows the hub's session ({why}); opening a new one")

    def _open_owned(self, mine: OwnerRef) -> Client:
        """A new session of this server for one upstream client, `mine()` (`SessionPool`): its
        server→client requests, log messages, resource updates and task status notifications go to
        that client only; list changes come from the shared session."""

        async def on_message(message: IncomingMessage) -> None:
            if (who := mine()) is not None:
                await self._on_owned_message(message, who)

        async def on_status(params: Any) -> None:
            if (who := mine()) is not None and self.on_task_status is not None:
                await self.on_task_status(self, params, who)

        def ended(why: str) -> None:  # its child exited, its SSE stream ended: the next call opens a new session
            if self.pool is not None:
                self.log.info("a client's own session ended: %s", why)
                self.pool.end(mine)

        client: Client | None = None

        def lost(why: str) -> None:  # the server no longer knows it (`hub.downstream.session_lost`): this one ends
            if self.pool is not None and client is not None:
                self.log.info("the server no longer knows a client's own session (%s); its next request opens a new one", why)
                self.pool.end_client(client)

        client = self._client_over(self._session_transport(ended, lost), on_message, self.owner_callbacks(mine), on_status)
        return client

    async def _on_owned_message(self, message: IncomingMessage, owner: Any) -> None:
        if isinstance(message, types.LoggingMessageNotification) and self.on_log is not None:
            await self.on_log(self, message.params, owner)
        elif isinstance(message, types.ResourceUpdatedNotification) and self.on_resource_updated is not None:
            await self.on_resource_updated(self, message.params, owner)
        elif isinstance(message, types.ElicitCompleteNotification) and self.on_elicitation_complete is not None:
            await self.on_elicitation_complete(self, message.params, owner)  # where its elicitation went
        elif isinstance(message, types.ProgressNotification) and self.on_progress is not None:
            await self.on_progress(self, message.params, owner)  # a task's, to its creator only

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Client]:
        """The client to use for the current request: the caller's own session of a `per_client`
        server (`current_owner`; opened on first use, `HubRefusal` when `max_sessions` are open),
        else the shared one. Either way the server must be up (`DownstreamUnavailable`)."""
        if (reopened := self.reopened) is not None:  # the server forgot the shared session: it is being reopened
            with anyio.move_on_after(self.connect_timeout_s):
                await reopened.wait()
        shared = await self.ready_client()
        owner = current_owner()
        if self.pool is None or owner is None:
            try:
                yield shared
            except MCPError as exc:
                if not is_lost_answer(exc.error.data):
                    raise
                if self._client is shared:
                    self.reopen(lost_why(exc.error.data))  # the supervisor reconnects; the next request waits for it
                raise session_ended(self.name, shared=True) from exc
            return
        principal, stateless = current_caller()
        # A stdio session is a child process: one stateless request lends it on to its caller's next
        # (`SessionPool`); any other server's costs a request or two, and each request gets its own.
        lend_key = identity(principal) if stateless and principal is not None and self.config.transport == "stdio" else None
        async with self.own_session(owner, lend_key) as client:
            yield client

    @asynccontextmanager
    async def own_session(self, owner: Any, lend_key: Any = None) -> AsyncIterator[Client]:
        """`owner`'s own session of this `per_client` server (`SessionPool.using`, opened if it has none).
        A server's "session not found" raised in the block ends that session as its server's loss does
        (`SessionPool.end_client`) and is raised as `session_ended(...)`: the request was not served, and
        the owner's next one opens a new session (re-check of round 13: a restarted server's 404 failed
        every call until idle; relay round 15: it dropped the client's subscriptions for good)."""
        assert self.pool is not None
        async with self.pool.using(owner, lend_key, counted_caller()) as client:
            try:
                yield client
            except MCPError as exc:
                if not session_ended_by_server(exc):
                    raise
                self.log.info("the server ended a client's own session; its next request opens a new one")
                self.pool.end_client(client)
                raise session_ended(self.name) from exc


def session_ended_by_server(exc: MCPError) -> bool:
    """Whether a Streamable HTTP server answered that it no longer knows the session: the spec's signal
    to start a new one. Its HTTP 404, or a 4xx whose words say so (the TypeScript SDK example's 400 "No
    valid session ID provided"), as the hub's transport answers it (`hub.downstream.session_lost`);
    else the SDK's client reports the server's JSON-RPC error, or `Session terminated`."""
    if is_lost_answer(exc.error.data):
        return True
    message = exc.error.message.lower()
    return exc.code == types.INVALID_REQUEST and "session" in message and ("not found" in message or "terminated" in message)


SESSION_ENDED = "session_ended"


def session_ended(server: str, shared: bool = False) -> HubRefusal:
    """The retryable refusal for a request the server answered "session not found" to: it was not served.
    `shared`: the hub's one session with the server, which the supervisor is opening anew."""
    if shared:
        return HubRefusal("unavailable", f"server {server!r} no longer knows the hub's session with it (restarted?); "
                          "the hub is opening a new one: call again", retry_after_s=SHARED_REOPEN_S,
                          details={"server": server, "reason": SESSION_ENDED})
    return HubRefusal("unavailable", f"server {server!r} ended this client's session with it (restarted?); "
                      "call again: the next call opens a new one", retry_after_s=0.1,
                      details={"server": server, "reason": SESSION_ENDED})


SHARED_REOPEN_S = 0.1
"""What a caller of a shared session the server forgot is told to wait: its next request waits for the
session to be open again (`Downstream.reopened`)."""


def is_session_ended(exc: BaseException) -> bool:
    """Whether `exc` is `session_ended(...)`."""
    return isinstance(exc, HubRefusal) and (exc.body.details or {}).get("reason") == SESSION_ENDED


class TaskStatusObserver(ClientExtension):
    """Hands a downstream's `notifications/tasks/status` to the hub. The SDK surfaces a notification
    that is not a core method of the negotiated version only to an extension's binding, so the hub's
    client advertises this (otherwise empty) extension to observe it (docs/protocol.md)."""

    identifier = "dev.mcp-hub/task-status-relay"

    def __init__(self, handler: Callable[[Any], Awaitable[None]]) -> None:
        self._handler = handler

    def notifications(self) -> list[NotificationBinding[Any]]:
        return [NotificationBinding(method="notifications/tasks/status", params_type=TaskStatus, handler=self._handler)]


class TaskStatus(BaseModel):
    """A `notifications/tasks/status`'s params as sent: the task id, every other field passed on as is."""

    model_config = ConfigDict(extra="allow")
    taskId: str  # noqa: N815 — the wire name; the relay rewrites only this field

