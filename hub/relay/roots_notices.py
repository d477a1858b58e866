"""Telling servers to ask for roots again (`notifications/roots/list_changed` downstream).

A server's `roots/list` asked outside any call is refused when no client it may ask can be asked
(`hub.relay.roots.RootsClients` keeps it waiting, with the reason); these notices end the wait: a client's
own `roots/list_changed`, a client finishing its handshake, a Streamable HTTP client's GET stream being
held by the SDK, or a waiting server's client calling it (`RequestRelay.track`). Rules in `hub.relay.requests`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from hub.auth.principal import Principal
from hub.relay.roots import RootsClients

if TYPE_CHECKING:
    from hub.hub import Hub

logger = logging.getLogger("hub.relay")
STREAM_OPEN_WAIT_S = 5.0
"""How long a client's GET stream, answered, may take to be held by the SDK before the waiting servers are told."""


class RootsNotices:
    """Sends `roots/list_changed` to the servers a client's arrival, roots change or call concerns."""

    def __init__(self, hub: Hub, roots: RootsClients) -> None:
        self._hub = hub
        self.roots = roots

    async def roots_changed(self, principal: Principal, connection: Any = None) -> None:
        """A client's `notifications/roots/list_changed`: tell each connected server it concerns, so that it
        asks again — the client's own session of a `per_client` server (if it has one open), else the shared
        one unless that one's roots are another client's (`RootsClients.answerer`)."""
        self.roots.arrived(connection, principal)
        for downstream in self._hub.downstreams.values():
            if not self.roots.sees(connection, principal, downstream.name):
                continue
            try:
                own = downstream.pool.client_of(connection) if downstream.pool is not None and connection is not None else None
                if downstream.pool is not None and connection is not None and own is None:
                    continue  # no session of its own yet: a session opened later asks for roots afresh
                if own is None and connection is not None and self._roots_of_another(downstream.name, connection):
                    continue
                await (own or downstream.client()).send_roots_list_changed()
            except Exception as exc:  # noqa: BLE001 — down or closing: it asks for roots when back
                logger.debug("roots/list_changed not sent to %s: %s", downstream.name, type(exc).__name__)

    def _roots_of_another(self, server: str, connection: Any) -> bool:
        found = self.roots.answerer(server)
        return not isinstance(found, str) and found is not connection

    async def client_arrived(self, connection: Any, principal: Principal, view: Any = None) -> None:
        """A client connection finished its handshake (on profile `view`): one that declared roots and can be
        asked now answers them from now on, and the servers waiting for it are told to ask again."""
        if self.roots.arrived(connection, principal, view):
            await self.tell_waiting(connection, principal)

    def client_stream_opened(self, session_id: str) -> None:
        """A Streamable HTTP client's GET stream was answered (`hub.frontends.http.own_streams`): once the SDK
        holds it, that client can be asked outside its calls, and the servers left waiting are told."""
        group = getattr(self._hub, "_task_group", None)
        if group is not None:
            group.start_soon(self._stream_opened, session_id)

    async def _stream_opened(self, session_id: str) -> None:
        with anyio.move_on_after(STREAM_OPEN_WAIT_S):  # the SDK registers the stream as the answer starts
            while (found := self.roots.declared(session_id)) is not None and not self.roots.can_ask(found[0]):
                await anyio.sleep(0.01)
        if found is not None and self.roots.arrived(*found):
            await self.tell_waiting(*found)

    async def tell_waiting(self, connection: Any, principal: Principal, only: str | None = None) -> None:
        """Each server waiting for roots that `connection` may now be asked for (`only`: just that one) is told
        to ask again (`roots/list_changed`): a shared session, or the connection's own `per_client` one."""
        shared, owned = self.roots.waiting_for(connection, principal, only)
        for server, own in [*((server, False) for server in shared), *((server, True) for server in owned)]:
            downstream = self._hub.downstreams.get(server)
            if downstream is None or (downstream.pool is not None) is not own:
                continue
            try:
                session = downstream.pool.client_of(connection) if own and downstream.pool is not None else downstream.client()
                if session is not None:
                    await session.send_roots_list_changed()
            except Exception as exc:  # noqa: BLE001 — not connected yet, or closing
                # still waiting: told when it is ready (`server_ready`). A server that asked during its own start, before
                # the hub counted it connected, was dropped here and never asked again (a fresh-clone CI run)
                self.roots.mark_waiting(server, connection if own else None)
                logger.debug("roots/list_changed not sent to %s: %s", server, type(exc).__name__)

    async def server_ready(self, server: str) -> None:
        """`server` is connected (again): if it waits for roots, each client that may now be asked tells it to ask."""
        for connection, principal in self.roots.declared_clients():
            await self.tell_waiting(connection, principal, only=server)
