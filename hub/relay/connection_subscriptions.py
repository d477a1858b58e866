"""Which resource subscriptions each handshake-era client connection holds (a mixin of
`hub.relay.subscriptions.ResourceSubscriptions`): per exposed URI the connections subscribed (held
weakly), per connection the URIs it holds — at most `MAX_SUBSCRIPTIONS_PER_CONNECTION`, released at
once when the connection ends (outside review relay26 D5) — and the copies other replicas carry of a
sealed session's subscriptions (`hub.cluster.session_state`). Rules: `hub.relay.subscriptions`."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp.shared.exceptions import MCPError

from hub.auth.principal import Principal

if TYPE_CHECKING:
    from hub.hub import Hub

__all__ = ["MAX_LISTEN_URIS", "MAX_SUBSCRIPTIONS_PER_CONNECTION", "RESOURCE_NOT_FOUND", "ConnectionSubscriptions"]

logger = logging.getLogger("hub.relay.subscriptions")

RESOURCE_NOT_FOUND = -32002
MAX_LISTEN_URIS = 100
MAX_SUBSCRIPTIONS_PER_CONNECTION = MAX_LISTEN_URIS
"""Decision: one handshake-era session holds as many subscriptions as one 2026-07-28 listen stream."""
_RELEASE_ON_CLOSE = "hub.relay.subscriptions.release_on_close"


class ConnectionSubscriptions:
    """The handshake-era connections' subscriptions (state on `ResourceSubscriptions`)."""

    _hub: Hub
    _clients: dict[str, weakref.WeakKeyDictionary[Connection, Principal]]
    _by_connection: weakref.WeakKeyDictionary[Connection, set[str]]

    if TYPE_CHECKING:  # provided by `ResourceSubscriptions`
        def _resolve(self, uri: str, principal: Principal) -> tuple[str, str]: ...
        async def _release_if_unused(self, uri: str) -> None: ...
        async def _carried_start(self, connection: Connection, uri: str, server: str, original: str) -> None: ...
        async def _carried_end(self, connection: Connection, uri: str) -> None: ...

    def _reserve(self, connection: Connection, uri: str) -> tuple[set[str], bool]:
        """Count `uri` against `connection`'s cap while its server is asked (concurrent subscribes count
        too): the URIs it holds, and whether `uri` is new among them. -32602 past the cap."""
        held = self._by_connection.setdefault(connection, set())
        fresh = uri not in held
        if fresh and len(held) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"this session already holds {len(held)} resource subscriptions, the most one session "
                                   f"may hold; send resources/unsubscribe for one it no longer needs, then subscribe "
                                   f"to {uri} again")
        held.add(uri)
        return held, fresh

    def _hold(self, connection: Connection, uri: str, principal: Principal) -> None:
        """Record `connection`'s subscription to `uri`; its teardown releases what it holds (`_ended`)."""
        self._clients.setdefault(uri, weakref.WeakKeyDictionary())[connection] = principal
        self._by_connection.setdefault(connection, set()).add(uri)
        state, stack = getattr(connection, "state", None), getattr(connection, "exit_stack", None)
        if isinstance(state, dict) and stack is not None and not state.get(_RELEASE_ON_CLOSE):
            state[_RELEASE_ON_CLOSE] = True
            stack.callback(self._ended, weakref.ref(connection))

    def _drop(self, connection: Connection, uri: str) -> bool:
        """Forget `connection`'s subscription to `uri`; whether it held one."""
        held = self._by_connection.get(connection)
        if held is not None:
            held.discard(uri)
        clients = self._clients.get(uri)
        return clients is not None and clients.pop(connection, None) is not None

    def _ended(self, ref: weakref.ref[Connection]) -> None:
        """A client connection ended: forget its subscriptions now, and let go of the server's in the
        background (its teardown must not wait on servers). A `per_client` server's own session of it is
        closed with the connection (`Hub.release_owner`)."""
        connection = ref()
        if connection is None:
            return
        uris = sorted(self._by_connection.pop(connection, set()))
        for uri in uris:
            if (clients := self._clients.get(uri)) is not None:
                clients.pop(connection, None)
        if uris:
            self._soon(self._release_all, uris)

    async def _release_all(self, uris: list[str]) -> None:
        for uri in uris:
            await self._release_if_unused(uri)

    async def _share(self, connection: Connection, uri: str, *, subscribed: bool) -> None:
        """The session's subscription for its copies on other replicas (`hub.cluster.session_state`)."""
        notifier = getattr(self._hub, "cluster_notify", None)
        if notifier is not None and notifier.sessions is not None:
            await notifier.sessions.share_subscription(connection, uri, subscribed)

    def carried(self, connection: Connection, uri: str, principal: Principal, *, subscribed: bool) -> None:
        """A subscription (or its end) this session's client made on another replica: held for its copy
        here at once (an update delivered here reaches it), the server subscribed here in the background
        (an update of this replica's server too); a URI it may not read here is left out, logged."""
        held = self._clients.get(uri)
        if not subscribed:
            if held is not None and self._drop(connection, uri):
                self._soon(self._carried_end, connection, uri)
            return
        try:
            server, original = self._resolve(uri, principal)
        except MCPError:
            logger.debug("a carried subscription to %s is not held: not readable here", uri)
            return
        clients = self._clients.setdefault(uri, weakref.WeakKeyDictionary())
        if connection in clients:
            return
        self._hold(connection, uri, principal)
        self._soon(self._carried_start, connection, uri, server, original)

    def _soon(self, work: Callable[..., Any], *args: Any) -> None:
        group = getattr(self._hub, "_task_group", None)
        if group is not None:
            group.start_soon(work, *args)
