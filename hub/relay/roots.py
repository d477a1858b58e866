"""Which client answers a server's `roots/list` asked outside any call of it (docs/protocol.md,
"Protocol relay"): the server-filesystem pattern, which asks once after `initialized` and again on
`notifications/roots/list_changed`.

Clients are remembered by their connection (`mcp.server.connection.Connection`, held weakly and
forgotten when it closes), which lives as long as the client is connected — never by the SDK's
`ServerSession`, which mcp 2.x makes per request (outside review interop16 #2: the hub kept the
per-request session, so the entry died with the call and the fallback found no one). Rules:
- a `per_client` session's request: its owner, if it declared roots;
- a shared session's: the connection that last called that server with roots; else the one
  connected client that declared roots and may see the server (behind the stdio front: its only
  client); several such and none has called it: refused, nothing says whose roots they are;
- asked before any client could answer: refused, and the server is sent
  `notifications/roots/list_changed` when a client with roots arrives, so that it asks again.
Out-of-call requests go on the client's own stream (the connection's standalone channel), bounded
by `ASK_TIMEOUT_S` — for a Streamable HTTP client only while its GET stream is open (`RootsClients.can_ask`):
the SDK drops what is written to a session's standalone stream when none is, so the server's ask waited
its whole timeout unseen and was never made again (a fresh-clone CI run: the hub told a waiting server
at the client's `initialized`, before the client's GET). Until then the server waits, and is told when
the GET stream opens (`hub.frontends.http.own_streams`) or the client calls it. A `roots/list` made
during a call of a client whose own stream is always open (stdio, legacy SSE) goes there too: it is
about the client, not the call, and is not withdrawn when that call ends."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal

ASK_TIMEOUT_S = 30.0
"""How long a `roots/list` sent on a client's own stream waits for the answer."""

_FORGET_ON_CLOSE = "mcp-hub/roots-forget-on-close"
"""`Connection.state` key: the connection is dropped from `RootsClients` when it closes."""


class ClientStream:
    """A client connection's own stream, standing in for a request's `ServerSession` when a server's
    request is sent outside any call of that client (`RequestRelay._relay` uses either alike)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection  # the name `ServerSession` uses: `RequestRelay` compares owners by it

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None:
        return self._connection.client_capabilities

    @property
    def can_send_request(self) -> bool:
        """A handshake-era connection with a back-channel (2026-07-28 forbids server-initiated requests)."""
        return askable(self._connection)

    async def send_request(self, request: Any, result_type: Any, metadata: Any = None, progress_callback: Any = None) -> Any:
        opts: dict[str, Any] = {"timeout": ASK_TIMEOUT_S}
        if progress_callback is not None:  # the client's progress for it goes back to the server (`_progress_back`)
            opts["on_progress"] = progress_callback
        return await self._connection.send_request(request, result_type=result_type, opts=opts)


def askable(connection: Any) -> bool:
    """Whether a server's request can be sent on `connection`'s own stream."""
    return (isinstance(connection, Connection) and connection.has_standalone_channel
            and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS)


def always_open(connection: Any) -> bool:
    """Whether `connection`'s own stream is there as long as the client is (stdio, a legacy SSE event
    stream), unlike a Streamable HTTP client's GET stream, which it may never open."""
    return askable(connection) and connection.session_id is None


def declares_roots(connection: Any) -> bool:
    caps = getattr(connection, "client_capabilities", None)
    return caps is not None and caps.roots is not None


class RootsClients:
    """Connections that declared roots, those that called each server, and servers left waiting."""

    def __init__(self) -> None:
        self._declared: weakref.WeakKeyDictionary[Connection, Principal] = weakref.WeakKeyDictionary()
        """Connected clients able to answer `roots/list` on their own stream, most recently seen last."""
        self._callers: dict[str, weakref.WeakKeyDictionary[Connection, Principal]] = {}
        """Per server, the connections that called it with roots, most recent last."""
        self._waiting: set[str] = set()
        """Servers whose shared session asked when no client could answer."""
        self._able: weakref.WeakSet[Connection] = weakref.WeakSet()
        """Declared connections that could be asked when last seen (`arrived`)."""
        self._streams: list[Callable[[str], bool | None]] = []
        """Probes of the HTTP fronts: whether a session's GET stream is open (None: not a session of theirs)."""

    def watch_streams(self, probe: Callable[[str], bool | None]) -> None:
        """Add an HTTP front's probe (`hub.frontends.http.own_streams`)."""
        self._streams.append(probe)

    def can_ask(self, connection: Any) -> bool:
        """Whether a request written now to `connection`'s own stream reaches its client: `askable`, and for a
        Streamable HTTP session (a session id) its GET stream open (the SDK drops what it cannot route)."""
        if not askable(connection):
            return False
        if connection.session_id is None or not self._streams:  # stdio, legacy SSE; no HTTP front here
            return True
        return any(probe(connection.session_id) for probe in self._streams)

    def arrived(self, connection: Any, principal: Principal) -> bool:
        """Note a client connection (at its `initialized`, at each call, at its GET stream's opening); True
        when it can be asked now and could not when last seen: the waiting servers are to be told."""
        if not (declares_roots(connection) and askable(connection)):
            return False
        self._declared.pop(connection, None)
        self._declared[connection] = principal
        if not connection.state.get(_FORGET_ON_CLOSE):
            connection.state[_FORGET_ON_CLOSE] = True
            connection.exit_stack.callback(self._forget, weakref.ref(connection))
        if not self.can_ask(connection):
            self._able.discard(connection)
            return False
        new = connection not in self._able
        self._able.add(connection)
        return new

    def declared(self, session_id: str) -> tuple[Connection, Principal] | None:
        """The connected client of Streamable HTTP session `session_id` that declared roots, with its principal."""
        return next(((connection, principal) for connection, principal in list(self._declared.items())
                     if connection.session_id == session_id), None)

    def mark_waiting(self, server: str) -> None:
        """`server`'s shared session asked and no client answered: told again when one can."""
        self._waiting.add(server)

    def called(self, server: str, connection: Any, principal: Principal) -> bool:
        """`connection` (which declared roots) has a call to `server` in flight; True when that made it newly
        able to answer (its GET stream opened after its `initialized`): waiting servers are to be told."""
        if connection is None or not declares_roots(connection):
            return False
        new = self.arrived(connection, principal)
        callers = self._callers.setdefault(server, weakref.WeakKeyDictionary())
        callers.pop(connection, None)
        callers[connection] = principal
        return new

    def target(self, server: str, owner: Any, sees: Callable[[Principal], bool],
               ) -> tuple[ClientStream, Principal] | str | None:
        """Who answers `server`'s out-of-call `roots/list`: (the client's stream, its principal); a reason
        to refuse (several clients, nothing says whose); None (no one: the server is marked waiting)."""
        if owner is not None:  # a per-client session answers to its own client only
            principal = self._declared.get(owner)
            return (ClientStream(owner), principal) if principal is not None and self.can_ask(owner) else None
        found = self.answerer(server, sees)
        if isinstance(found, Connection):
            return ClientStream(found), self._declared[found]
        if found is None:
            self._waiting.add(server)
        return found

    def answerer(self, server: str, sees: Callable[[Principal], bool]) -> Connection | str | None:
        """The client whose roots `server`'s shared session gets (see the module's rules); a reason to
        refuse; None (no client can answer)."""
        for connection in reversed(list(self._callers.get(server, {}))):
            if connection in self._declared:  # still connected; not asked before its GET stream is open
                return connection if self.can_ask(connection) else None
        able = [connection for connection, principal in self._declared.items() if sees(principal)]
        if len(able) == 1:
            return able[0] if self.can_ask(able[0]) else None
        if able:
            return (f"{len(able)} clients of the hub declared roots and none has called {server!r} yet; "
                    "nothing says whose roots it asks for")
        return None

    def is_waiting(self, server: str) -> bool:
        """Whether `server`'s shared session asked for roots when no client could answer."""
        return server in self._waiting

    def waiting_for(self, sees: Callable[[str], bool]) -> list[str]:
        """The waiting servers a newly arrived client may see (no longer waiting: they are told to ask again)."""
        told = [server for server in sorted(self._waiting) if sees(server)]
        self._waiting.difference_update(told)
        return told

    def _forget(self, ref: weakref.ref[Connection]) -> None:
        connection = ref()
        if connection is None:
            return
        self._declared.pop(connection, None)
        self._able.discard(connection)
        for callers in self._callers.values():
            callers.pop(connection, None)
