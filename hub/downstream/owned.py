"""Per-client sessions of one downstream (issue #19 item 7; a mixin of
`hub.downstream.connection.Downstream`): which session a request uses, and how a session opened for
one upstream client is built — its server→client requests, log messages, resource updates and task
status notifications go to that client only (`hub.relay`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage

from hub.config import ServerConfig
from hub.downstream.sessions import SessionPool, current_owner


class OwnedSessions:
    """`session()` and `_open_owned(owner)` (state and transports live on `Downstream`)."""

    config: ServerConfig
    name: str
    pool: SessionPool | None
    server_object: Any
    caller: Any
    owner_callbacks: Callable[[Any], dict[str, Any]]
    on_log: Callable[..., Awaitable[None]] | None

    if TYPE_CHECKING:  # provided by `Downstream`
        def _session_transport(self) -> Any: ...
        def _client_over(self, transport: Any, on_message: Any, callbacks: dict[str, Any]) -> Client: ...
        async def ready_client(self) -> Client: ...

    def _open_owned(self, owner: Any) -> Client:
        """A new session of this server for one upstream client (`SessionPool`): its server→client
        requests go to that client; its log messages are relayed; list changes come from the shared session."""
        return self._client_over(self._session_transport(), self._on_owned_message, self.owner_callbacks(owner))

    async def _on_owned_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.LoggingMessageNotification) and self.on_log is not None:
            await self.on_log(self, message.params)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Client]:
        """The client to use for the current request: the caller's own session of a `per_client`
        server (`current_owner`; opened on first use, `HubRefusal` when `max_sessions` are open),
        else the shared one. Either way the server must be up (`DownstreamUnavailable`)."""
        shared = await self.ready_client()
        owner = current_owner()
        if self.pool is None or owner is None:
            yield shared
            return
        async with self.pool.using(owner) as client:
            yield client

