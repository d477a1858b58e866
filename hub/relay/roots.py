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
        if progress_callback is not None:  # the client's progress for it goes back to the server (`hub.relay.call_bound.progress_back`)
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


Sees = Callable[[Principal, Any, str], bool]
"""Whether a client (its principal, and the profile view it connected on: None for the whole catalog) may
see a server: nothing a server sends, nor anything of a client's, crosses where it may not."""


class RootsClients:
    """Connections that declared roots, those that called each server, and servers left waiting.

    Waiting: a server whose out-of-call ask was refused (no client could be asked, several could and none
    is its caller, its caller's GET stream was closed, an ask left unanswered or withdrawn) is told to ask
    again (`roots/list_changed`) when a client it may ask can be asked: at that client's handshake, when its
    GET stream opens, or when it calls the server while it can be asked on its own stream. A `per_client`
    session waits for its own client only. A Streamable HTTP client that never opens a GET stream is asked
    only during its calls: telling a server at each of its calls made an ask that came after the call ended
    and was refused, once per call (outside review roots27 #6)."""

    def __init__(self, sees: Sees) -> None:
        self._sees = sees
        self._declared: weakref.WeakKeyDictionary[Connection, Principal] = weakref.WeakKeyDictionary()
        """Connected clients that declared roots and have a channel of their own, most recently seen last."""
        self._views: weakref.WeakKeyDictionary[Connection, Any] = weakref.WeakKeyDictionary()
        """The profile view each connection connected on (absent: the whole catalog)."""
        self._callers: dict[str, weakref.WeakKeyDictionary[Connection, Principal]] = {}
        """Per server, the connections that called it with roots, most recent last."""
        self._waiting: set[str] = set()
        """Servers whose shared session's ask was refused."""
        self._waiting_owned: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        """Per client, the servers whose `per_client` session of that client had its ask refused."""
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

    def sees(self, connection: Any, principal: Principal, server: str) -> bool:
        """Whether this client, on the profile it connected on, may see `server`."""
        return self._sees(principal, self._views.get(connection), server)

    def arrived(self, connection: Any, principal: Principal, view: Any = None) -> bool:
        """Note a client connection (at its `initialized`, with the profile view it is on; at each call; at its
        GET stream's opening); True when it declared roots and can be asked now."""
        if not (declares_roots(connection) and askable(connection)):
            return False
        if view is not None:
            self._views[connection] = view
        self._declared.pop(connection, None)
        self._declared[connection] = principal
        if not connection.state.get(_FORGET_ON_CLOSE):
            connection.state[_FORGET_ON_CLOSE] = True
            connection.exit_stack.callback(self._forget, weakref.ref(connection))
        return self.can_ask(connection)

    def declared_clients(self) -> list[tuple[Connection, Principal]]:
        """Every connected client that declared roots, with its principal."""
        return list(self._declared.items())

    def declared(self, session_id: str) -> tuple[Connection, Principal] | None:
        """The connected client of Streamable HTTP session `session_id` that declared roots, with its principal."""
        return next(((connection, principal) for connection, principal in list(self._declared.items())
                     if connection.session_id == session_id), None)

    def mark_waiting(self, server: str, owner: Any = None) -> None:
        """`server`'s session (`owner`'s own for a `per_client` one) asked and no client answered: told again
        when one can be asked."""
        if owner is None:
            self._waiting.add(server)
        elif owner in self._declared:  # a client that declared no roots is never asked: nothing to wait for
            self._waiting_owned.setdefault(owner, set()).add(server)

    def called(self, server: str, connection: Any, principal: Principal) -> bool:
        """`connection` has a call to `server` in flight (one it may make: `RequestRelay.tracking`); True when
        it declared roots, can be asked now, and `server` waits for it: the server is to be told."""
        if connection is None or not declares_roots(connection):
            return False
        able = self.arrived(connection, principal)
        callers = self._callers.setdefault(server, weakref.WeakKeyDictionary())
        callers.pop(connection, None)
        callers[connection] = principal
        return able and (server in self._waiting or server in self._waiting_owned.get(connection, ()))

    def target(self, server: str, owner: Any) -> tuple[ClientStream, Principal] | str:
        """Who answers `server`'s out-of-call `roots/list`: (the client's stream, its principal), or why no
        one can now — the server is then marked waiting (see the class)."""
        if owner is not None:  # a per-client session answers to its own client only
            principal = self._declared.get(owner)
            if principal is not None and self.can_ask(owner):
                return ClientStream(owner), principal
            self.mark_waiting(server, owner)
            return (f"the client of this session of {server!r} declared no roots" if principal is None else
                    f"the client of this session of {server!r} has no GET event stream open to be asked on; "
                    f"{server!r} is told to ask again when it opens one or calls it")
        found = self.answerer(server)
        if isinstance(found, Connection):
            return ClientStream(found), self._declared[found]
        self._waiting.add(server)
        return found

    def answerer(self, server: str) -> Connection | str:
        """The client whose roots `server`'s shared session gets (see the module's rules), or why none."""
        for connection in reversed(list(self._callers.get(server, {}))):
            if connection in self._declared and self.sees(connection, self._declared[connection], server):
                if self.can_ask(connection):
                    return connection
                return (f"the client that last called {server!r} with roots has no GET event stream open to be "
                        f"asked on; {server!r} is told to ask again when it opens one or calls it")
        able = [connection for connection, principal in self._declared.items() if self.sees(connection, principal, server)]
        if len(able) == 1:
            if self.can_ask(able[0]):
                return able[0]
            return (f"the one client with roots that may see {server!r} has no GET event stream open to be asked "
                    f"on; {server!r} is told to ask again when it opens one or calls it")
        if able:
            return (f"{len(able)} clients of the hub declared roots and none has called {server!r} yet; "
                    f"nothing says whose roots it asks for. {server!r} is told to ask again when one calls it")
        return (f"no client that declared roots and may see {server!r} is connected; it is told to ask again "
                "(roots/list_changed) when one arrives")

    def waiting_for(self, connection: Any, principal: Principal, only: str | None = None) -> tuple[list[str], list[str]]:
        """The waiting servers (`only`: just that one) `connection` may be asked for now, no longer waiting (they
        are to be told to ask again): (shared servers it may see, servers of its own `per_client` sessions)."""
        if not self.can_ask(connection):
            return [], []
        shared = [server for server in sorted(self._waiting)
                  if (only is None or server == only) and self.sees(connection, principal, server)]
        self._waiting.difference_update(shared)
        mine = self._waiting_owned.get(connection, set())
        owned = sorted(server for server in mine if only is None or server == only)
        mine.difference_update(owned)
        return shared, owned

    def _forget(self, ref: weakref.ref[Connection]) -> None:
        connection = ref()
        if connection is None:
            return
        self._declared.pop(connection, None)
        self._views.pop(connection, None)
        self._waiting_owned.pop(connection, None)
        for callers in self._callers.values():
            callers.pop(connection, None)
