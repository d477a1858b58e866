"""Log messages through the hub: `logging/setLevel` fanned out (`hub.relay.log_levels`), `notifications/message`
relayed back.

Rules (docs/domains.md, "Protocol relay"):
- A handshake-era client filters downstream logs with `logging/setLevel` (the 2026-07-28 era deprecates
  logging and has no such request). From then on it receives every downstream's `notifications/message`
  at or above its level, from the servers it may see (`may_see_server`), nothing from the others.
- A client that never set a level (relay27 item 1: it got none at all) has not filtered: `logging/setLevel`
  is optional, a server may log without one, and the SDKs' servers then send every level. Decision: it
  gets every message its servers send — what a server sends on its own default, the level a shared
  session was set to for the clients that asked, nothing more: the hub never sets a level for it — under
  every other rule here (scope, caller, a call's stream, a `per_client` session's owner, a task's owner),
  on its own stream. So it may see what another client's more verbose level makes a shared server send,
  and only `emergency` once the last client that asked has left (`hub.relay.log_levels.QUIET`); a client
  that wants a steady level sets one. The front end tells the relay of each client at its handshake
  (`LevelFanOut.arrived`).
- The message's `logger` names its server: the namespace (the server key when the namespace is
  empty), or `<namespace>/<logger>` when the server named a logger. `level` and `data` pass intact.
- A shared downstream session serves every client, so each downstream that advertises `logging`
  is set to the most verbose level any live client asked for; each client is then filtered at its
  own level by the hub. A shared session's message cannot be told apart by call: while calls are in
  flight to that server it goes only to their caller's clients, and to nobody when calls of several
  callers are (`CallStats.callers`); with none in flight (the server's own news), to every listener. A `per_client` server's session of one client gets that client's own level
  (at setLevel if open, else when it opens), and its messages go to that client only. A setLevel answers once every such downstream answered (or 5 s passed);
  one that fails is logged, never an error for the client.
- Where a setLevel client gets a message: on the stream of its call in flight that the message belongs
  to — a `per_client` session's, its owner's call to that server; a shared session's, when every call,
  prompt, read and completion in flight to that server is that connection's (`_sole`) — as a server
  sends a request's own messages (`related_request_id`); else on the client's own stream (the GET stream
  over Streamable HTTP, which is optional: relay18 D5, a client without it got none of its call's
  messages). A message known that way to be one connection's call's goes to no other connection of the
  same principal; when it cannot be told (a call of a client that asked for no logs is in flight too, or
  a stdio line is handled after its call ended), it goes to the caller's clients as above.
- A message the server tagged with `_meta` `io.modelcontextprotocol/related-task` (2025-11-25: a server
  tags everything about a task) is routed by that tag, never by who is calling (outside review
  isolation21 #1): to the connection that created the task, if it listens; once that connection
  is gone (a disconnect is not a cancel), to its principal's connections that listen, while the hub
  holds the task as that principal's; to nobody when the hub did not relay that task or has forgotten
  it — never to another principal, never as the server's own news. The id is the one the client knows.
- Several replicas: a sealed session's level is shared with every replica holding a copy of it
  (`hub.cluster.session_state`), so its GET stream gets the lines wherever it is; a line sent on a
  call's stream here is not sent again on its GET stream by another replica (`relay`'s `skip`).
- A 2026-07-28 client opts in per request (`_meta` `io.modelcontextprotocol/logLevel` on its
  `tools/call`, `prompts/get`, `resources/read` or `completion/complete`; `logging/setLevel` is gone).
  While that request runs, the messages its server sends reach
  it at or above the level the request named, on that request's own stream (HTTP) or as notifications
  tied to it (stdio), tagged as above, under the same scope rule; nothing without the key, nothing once
  the call is answered. A call parked for input-required gets them on the leg then waiting. A shared
  session's messages go to the opted-in calls in flight under the same caller rule as setLevel
  clients; a `per_client` session's to its own client's calls only.
  The level is passed on in the downstream call's `_meta` when that server speaks 2026-07-28 (it sends
  nothing otherwise); a handshake-era server is not sent a `logging/setLevel` for it (that would be
  connection-wide): what it sends anyway is relayed.

Levels and their fan-out are `hub.relay.log_levels`; routing by a task tag is `hub.relay.task_logs`.
"""

from __future__ import annotations

import json
import logging
import warnings
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LOG_LEVEL_META_KEY  # the reserved `_meta` key of a 2026-07-28 request's log opt-in
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal, identity
from hub.cluster.session_state import session_digest
from hub.relay.log_levels import RANK, LevelFanOut
from hub.relay.scope import may_see_server
from hub.relay.task_logs import RELATED_TASK, Audience, TaskLogs, related_task_id, tag_logger

if TYPE_CHECKING:
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

logger = logging.getLogger("hub.relay.logs")

__all__ = ["RELATED_TASK", "CallListener", "CallStream", "LogRelay", "call_log_level", "related_task_id", "requested_level",
           "tag_logger", "with_log_level"]


call_log_level: ContextVar[str | None] = ContextVar("call_log_level", default=None)
"""The log level the 2026-07-28 client of the running call asked for (passed on downstream)."""

_QUIET: AbstractContextManager[None] = nullcontext()
SendLog = Callable[[types.LoggingMessageNotificationParams], Awaitable[None]]


@dataclass(eq=False)
class CallListener:
    """A 2026-07-28 client's call in flight that opted in to log messages."""

    server: str
    level: str
    principal: Principal
    owner: Any
    """The client's connection (a `per_client` session's messages go to its owner's calls only)."""
    send: SendLog


@dataclass(eq=False)
class CallStream:
    """A handshake-era setLevel client's call in flight: a stream its server's messages may go on."""

    server: str
    connection: Any
    send: SendLog


def requested_level(protocol_version: str | None, meta: Any) -> str | None:
    """The level a 2026-07-28 request opted in at (`_meta` key), or None (not 2026, absent, not a level)."""
    if protocol_version not in MODERN_PROTOCOL_VERSIONS or not isinstance(meta, dict):
        return None
    level = meta.get(LOG_LEVEL_META_KEY)
    return level if level in RANK else None


def with_log_level(meta: dict[str, Any] | None, protocol_version: str | None) -> dict[str, Any] | None:
    """`meta` for a downstream call: with the running call's log opt-in when the server speaks 2026-07-28."""
    level = call_log_level.get()
    if level is None or protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return meta
    return {**(meta or {}), LOG_LEVEL_META_KEY: level}


# The hub relays logging on purpose (every handshake-era client uses it): no warning per setLevel.
warnings.filterwarnings("ignore", message="The logging capability is deprecated", category=MCPDeprecationWarning)


STAMPS_KEPT = 256
"""Read-time audiences kept per server (`LogRelay.stamp`), the oldest forgotten first."""


def _key(params: Any) -> str:
    """What tells one log message's params from another's, alike from the raw line and the SDK's model."""
    return json.dumps([params.get("level"), params.get("logger"), params.get("data")], sort_keys=True, default=str)


def _whose(downstream: Downstream) -> frozenset[tuple[str, str]] | None:
    """Which callers a shared session's log message may reach: while calls are in flight to the server,
    only their caller's — and nobody's when several callers' calls are, since a message cannot be told
    apart by call (an outside review saw bob receive a line the server wrote during alice's call);
    None (no restriction) when no call is in flight: the server's own news."""
    callers = downstream.stats.calling()
    if not callers:
        return None
    return frozenset(callers) if len(callers) == 1 else frozenset()


class LogRelay(TaskLogs, LevelFanOut):
    """Per client connection: the level it asked for and who it is; per downstream: the level sent."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._clients: weakref.WeakKeyDictionary[Connection, tuple[str, Principal]] = weakref.WeakKeyDictionary()
        self._unfiltered: weakref.WeakKeyDictionary[Connection, Principal] = weakref.WeakKeyDictionary()
        """Handshake-era clients that never set a level (`arrived`): they get every level a server sends."""
        self._sent: dict[str, tuple[int, str]] = {}
        """Per server: (id of the client session, level) last set on it — a reconnect is a new session."""
        self._stamps: dict[str, OrderedDict[str, deque[Audience]]] = {}
        """Per server: read-time audiences of log lines not yet relayed, by `_key` (`stamp`)."""
        self._calls: dict[str, list[CallListener]] = {}
        """Per server: the opted-in 2026-07-28 calls to it in flight."""
        self._streams: dict[str, list[CallStream]] = {}
        """Per server: the calls to it in flight of handshake-era clients that set a level (`streaming`)."""

    def listens(self, connection: Any) -> bool:
        """Whether this handshake-era client connection asked for log messages (`logging/setLevel`)."""
        return connection is not None and connection in self._clients

    def streaming(self, server: str, connection: Any, send: SendLog) -> AbstractContextManager[None]:
        """While the block (a handshake-era call to `server`) runs, the messages that belong to it go to
        `send`, its own stream; a shared no-op for a client that set no level (the common case)."""
        return self._stream(server, connection, send) if server and self.listens(connection) else _QUIET

    @contextmanager
    def _stream(self, server: str, connection: Any, send: SendLog) -> Iterator[None]:
        stream = CallStream(server, connection, send)
        streams = self._streams.setdefault(server, [])
        streams.append(stream)
        try:
            yield
        finally:
            streams.remove(stream)
            if not streams:
                self._streams.pop(server, None)

    def _sole(self, downstream: Downstream) -> Any:
        """The one connection whose requests are everything in flight to `downstream`'s shared session, known
        because it asked for log messages (`streaming`); None when that cannot be told. Then a message is that
        connection's call's only: not for another connection of the same principal (a second window of one
        key, or any client with auth off)."""
        streams = self._streams.get(downstream.name)
        if not streams or self._calls.get(downstream.name):
            return None
        connection = streams[0].connection
        stats = downstream.stats
        if any(stream.connection is not connection for stream in streams) or stats.in_flight > len(streams):
            return None
        return connection if all(asker is connection for asker in stats.askers()) else None

    def _stream_of(self, downstream: Downstream, connection: Any, owner: Any) -> CallStream | None:
        """The call of `connection` a message of `downstream` belongs to (see the module's rules), or None."""
        streams = self._streams.get(downstream.name, ())
        mine = [stream for stream in streams if stream.connection is connection]
        if not mine:
            return None
        if owner is not None:  # a per-client session: its messages are its owner's
            return mine[-1]
        # a shared session's: only when nothing else is in flight there (`_sole`)
        return mine[-1] if self._sole(downstream) is connection else None

    def listening(self, server: str, level: str | None, principal: Principal, owner: Any,
                  send: SendLog) -> AbstractContextManager[None]:
        """While the block runs, `server`'s log messages at or above `level` go to `send`, and the level
        is passed on downstream (`with_log_level`); a shared no-op when `level` is None (the common case)."""
        return _QUIET if level is None else self._listen(server, level, principal, owner, send)

    @contextmanager
    def _listen(self, server: str, level: str, principal: Principal, owner: Any, send: SendLog) -> Iterator[None]:
        listener = CallListener(server, level, principal, owner, send)
        listeners = self._calls.setdefault(server, [])
        listeners.append(listener)
        token = call_log_level.set(level)
        try:
            yield
        finally:
            call_log_level.reset(token)
            listeners.remove(listener)
            if not listeners:
                self._calls.pop(server, None)

    def stamp(self, downstream: Downstream, params: Any) -> None:
        """A stdio child's log message (its params as read from the line), as it is read: whose it may
        be is judged now (`_whose`). The SDK handles the message in a task of its own, often after the
        answer read next has ended the call — then it seemed nobody's call and reached every listener
        (re-check of round 13: 22 of 25 lines a server logged just before answering alice reached
        carol). Judged from the parsed message, so escaped slashes or NaN in it change nothing (round 14)."""
        if isinstance(params, dict):
            stamps = self._stamps.setdefault(downstream.name, OrderedDict())
            stamps.setdefault(_key(params), deque()).append(_whose(downstream))
            while len(stamps) > STAMPS_KEPT:
                stamps.popitem(last=False)

    def audience(self, downstream: Downstream, params: Any = None) -> Audience:
        """Whose clients a message of `downstream`'s shared session may reach: as judged when it was read
        (`stamp`), else now (`_whose`); what a replica publishing it tells the others (`hub.cluster.notify`)."""
        if params is not None and related_task_id(params) is not None:
            return self.task_audience(downstream, params)
        judged = self._judged(downstream, params, take=False) if params is not None else False
        return _whose(downstream) if judged is False else judged

    def _judged(self, downstream: Downstream, params: Any, *, take: bool) -> Audience | bool:
        """The read-time audience of this message (`stamp`), used up when `take`; False when it was not stamped."""
        stamps = self._stamps.get(downstream.name)
        if not stamps:
            return False
        key = _key(params.model_dump(exclude_none=True))
        judged = stamps.get(key)
        if not judged:
            return False
        if not take:
            return judged[0]
        audience = judged.popleft()
        if not judged:
            del stamps[key]
        return audience

    async def relay(self, downstream: Downstream, params: types.LoggingMessageNotificationParams, owner: Any = None,
                    *, remote: frozenset[tuple[str, str]] | None | bool = False,
                    skip: frozenset[str] = frozenset()) -> set[str]:
        """Pass one downstream log message to every client that asked for its level and may see the
        server; one from a per-client session (`owner`) to that session's client only. Also to the
        opted-in 2026-07-28 calls to that server in flight (`listening`). `remote`: another replica's
        message, with the audience that replica judged (`audience`): its calls in flight are not ours,
        so ours are never asked (an outside review, cluster round 12, saw bob on replica B get a line
        the server wrote during alice's call on replica A). Returns the (sealed) sessions that got it on a
        call's stream here, so another replica does not send it on their GET stream too; `skip`: those
        sessions, told by the replica that published it (`hub.cluster.session_state`)."""
        rank = RANK.get(params.level, 0)
        on_call: set[str] = set()
        local = remote is False
        task_id = related_task_id(params)
        if local and task_id is not None:  # the server said whose it is: that task's owner's, or nobody's
            if owner is None:
                self._judged(downstream, params, take=True)  # its read-time stamp, used up (not consulted)
            await self._to_task_owner(downstream, params, owner, task_id, rank)
            return on_call
        if remote is not False:
            whose = remote if isinstance(remote, frozenset) else None
        else:
            judged = self._judged(downstream, params, take=True) if owner is None else None
            whose = None if owner is not None else _whose(downstream) if judged is False else judged
            if self._calls.get(downstream.name):
                await self._to_calls(downstream, params, owner, rank, whose)
        if not self._clients and not self._unfiltered:
            return on_call
        sole = self._sole(downstream) if local and owner is None else None
        body: dict[str, Any] | None = None
        if owner is None:
            clients = self.listeners()
        else:
            clients = [(owner, *asked)] if (asked := self.listener(owner)) is not None else []
        for connection, level, principal in clients:
            if (level is not None and rank < RANK[level]) or not may_see_server(self._hub, principal, downstream.name):
                continue  # below the level it set (a client that set none has not filtered), or a server it may not see
            if whose is not None and identity(principal) not in whose:
                continue
            if sole is not None and connection is not sole:
                continue  # its call's, not another connection's of the same principal
            if skip and session_digest(connection) in skip:
                continue  # got it on its call's stream on the replica that published it
            stream = self._stream_of(downstream, connection, owner) if local else None
            if stream is not None and await _sent_on(stream, params, downstream):
                if (digest := session_digest(connection)) is not None:
                    on_call.add(digest)
                continue
            if body is None:
                body = params.model_dump(by_alias=True, mode="json", exclude_none=True)
                body["logger"] = tag_logger(downstream.config.namespace or downstream.name, params.logger)
            await connection.notify("notifications/message", body)  # best effort: never raises
        return on_call

    async def _to_calls(self, downstream: Downstream, params: types.LoggingMessageNotificationParams, owner: Any,
                        rank: int, whose: frozenset[tuple[str, str]] | None) -> None:
        tagged: types.LoggingMessageNotificationParams | None = None
        for listener in list(self._calls.get(downstream.name, ())):
            if (owner is not None and listener.owner is not owner) or rank < RANK[listener.level]:
                continue
            if whose is not None and identity(listener.principal) not in whose:
                continue
            if not may_see_server(self._hub, listener.principal, downstream.name):
                continue
            if tagged is None:
                tagged = params.model_copy(update={"logger": tag_logger(downstream.config.namespace or downstream.name,
                                                                        params.logger)})
            try:
                await listener.send(tagged)
            except Exception as exc:  # noqa: BLE001 — best effort, as every relayed notification: the call goes on
                logger.debug("log message not relayed to a call: %s", type(exc).__name__)


async def _sent_on(stream: CallStream, params: types.LoggingMessageNotificationParams, downstream: Downstream) -> bool:
    """Send a message on its call's stream; False if that failed (the client's own stream gets it then)."""
    try:
        await stream.send(params.model_copy(update={"logger": tag_logger(downstream.config.namespace or downstream.name,
                                                                         params.logger)}))
        return True
    except Exception as exc:  # noqa: BLE001 — the call's stream closed meanwhile: best effort, as every notification
        logger.debug("log message not sent on its call's stream: %s", type(exc).__name__)
        return False
