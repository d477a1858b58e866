"""A 2025-11-25 session's log level and resource subscriptions, carried across replicas through Redis.

Behind a round-robin balancer a client's `logging/setLevel` or `resources/subscribe` lands on one
replica and its GET stream on another; held per replica, the level and the subscription were where
the stream was not, so the Redis relay (`hub.cluster.notify`) delivered nothing (outside review,
cluster round 18 #6: a standard SDK client got 0 of 6 log lines of its own calls). Decided: they
travel with the session, so every replica holding a copy of it delivers as the one that took them.

- Stored in Redis (`hub.cluster.redis_url`) as the hash `mcp-hub:session-state:<sha256 of the id>`:
  field `level`, and one field `sub:<uri>` per subscribed URI, expiring `hub.cluster.session_max_age_s`
  after its last change (the id cannot be opened after that anyway). Only sealed ids (portable
  sessions, `hub.cluster.sessions`); a session on one replica only keeps them in memory as before.
- A replica that takes a `logging/setLevel`, `resources/subscribe` or `unsubscribe` writes it there and
  publishes the change (event `session_state`) for the replicas holding a copy of the session now;
  a replica that adopts the session later reads the hash before serving the adopting request.
- A notification already judged for the session where it happened (a task's status, `hub.relay.tasks`)
  is sent to its copies on every replica (`session_notify`): its GET stream is on one of them.
- The principal a carried state is applied under is the one of the session's copy here (the
  session's own: the sealed id is bound to it), never anything read from Redis; scopes are checked
  at delivery as for a local client. A Redis outage: the change holds on the replica that took it
  (as before), logged once per outage.
- Both events are sealed with the shared secrets (`hub.cluster.replies.ReplicaMessages`); one not sealed
  by a replica of this deployment, stale or replayed is ignored (outside review, cluster round 26 #2).
- This module also knows which connections are copies open here (`copy_opened`, `copy_closed`, told by
  `hub.cluster.sessions`), so another replica's ask about a session counts as use of its copy here
  (`in_use`) and a copy that closed is not taken for one (round 26 #3).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio

from hub.cluster.replies import ReplicaMessages
from hub.cluster.signing import id_digest
from hub.cluster.sealing import PREFIX

if TYPE_CHECKING:
    from mcp.server.connection import Connection

    from hub.auth.principal import Principal
    from hub.cluster.notify import ClusterNotifier
    from hub.hub import Hub

logger = logging.getLogger("hub.cluster")

KEY_PREFIX = "mcp-hub:session-state:"
EVENT = "session_state"
REDIS_TIMEOUT_S = 2.0
LEVEL, SUB = "level", "sub:"
NOTIFY = "session_notify"
CARRIED_NOTIFICATIONS = frozenset({"notifications/tasks/status"})
"""What `notify_elsewhere` passes on: a notification already judged for this session where it happened."""


def session_digest(connection: Any) -> str | None:
    """The digest naming `connection`'s session among replicas; None when its id is not sealed (it never
    moves: nothing to carry)."""
    session_id = getattr(connection, "session_id", None)
    if not isinstance(session_id, str) or not session_id.startswith(PREFIX):
        return None
    return id_digest(session_id)


_TRANSPORTS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""A session copy's connection here → the HTTP transport serving it (`hub.cluster.sessions`)."""
_CLOSED: weakref.WeakSet[Any] = weakref.WeakSet()
"""Connections whose copy closed here (idle, evicted, stopped) though something still references them."""


def copy_opened(connection: Any, transport: Any) -> None:
    """`connection` serves a copy of a sealed session here, through `transport` (`hub.cluster.sessions`)."""
    _TRANSPORTS[connection] = transport


def copy_closed(connection: Any) -> None:
    """`connection`'s copy closed here: another replica's ask about it is answered "no longer holds this
    session", never "not found" (outside review, cluster round 26 #3)."""
    _TRANSPORTS.pop(connection, None)
    _CLOSED.add(connection)


@contextmanager
def in_use(connection: Any) -> Iterator[None]:
    """While another replica's ask about this session is answered here, its copy here is in use: its idle
    countdown is suspended as for a request on its own transport (the SDK's `handle_request` does the
    same), and restarts when the last one ends. Outside review, cluster round 26 #3: a task polled through
    replica B was lost when its holder A's copy "idled" — the polls A answered for B did not count."""
    transport = _TRANSPORTS.get(connection)
    scope = getattr(transport, "idle_scope", None)
    timeout = getattr(transport, "_idle_timeout", None)
    if transport is None or scope is None or timeout is None or scope.cancel_called:
        yield
        return
    transport._requests_in_flight += 1  # noqa: SLF001 — the transport's own in-flight count, as handle_request keeps it
    scope.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1  # noqa: SLF001
        if not transport._requests_in_flight:  # noqa: SLF001
            scope.deadline = anyio.current_time() + timeout


class SessionState:
    """This replica's copies of sealed sessions, and their log level and subscriptions in Redis."""

    def __init__(self, hub: Hub, notifier: ClusterNotifier, ttl_s: float) -> None:
        from hub.cluster.signing import configured_secrets

        self._hub = hub
        self._notifier = notifier
        self._ttl_s = max(1, int(ttl_s))
        secrets = configured_secrets(hub.config)
        self._messages = ReplicaMessages(secrets) if secrets else None
        """Events about a session are sealed with the shared secrets (outside review, cluster round 26 #2:
        unsigned, anyone publishing on Redis changed a session's level or subscriptions, or put a task
        status on its stream). Without secrets no id is sealed, so no session moves: nothing to carry."""
        self._held: dict[str, tuple[weakref.ref[Connection], Principal]] = {}
        """Session digest → its connection here (held weakly) and the principal it is bound to."""
        self._failing = False
        notifier.on_event(EVENT, self._changed)
        notifier.on_event(NOTIFY, self._notified)

    # -- a copy of a session here -----------------------------------------------------------------

    async def hold(self, connection: Connection, principal: Principal, adopted: bool) -> None:
        """A connection serves a sealed session here (before its first request): note it, and when the
        session was opened elsewhere, apply the level and subscriptions it has there."""
        digest = session_digest(connection)
        if digest is None:
            return
        self._held[digest] = (weakref.ref(connection, lambda _, d=digest: self._drop(d)), principal)
        if not adopted:
            return  # just initialized: nothing set yet
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                fields = await self._notifier._redis.hgetall(KEY_PREFIX + digest)  # noqa: SLF001 — same Redis
        except Exception as exc:  # noqa: BLE001 — best effort: starts afresh here, as without Redis
            self._warn("read", exc)
            return
        self._failing = False
        for name, value in fields.items():
            self._apply(connection, principal, _text(name), _text(value))

    def _drop(self, digest: str) -> None:
        held = self._held.get(digest)
        if held is not None and held[0]() is None:
            del self._held[digest]

    def _apply(self, connection: Connection, principal: Principal, name: str, value: str | None) -> None:
        """One carried field onto the session's copy here (`value` None: removed)."""
        if name == LEVEL and value is not None:
            self._hub.log_relay.carried(connection, value, principal)
        elif name.startswith(SUB):
            self._hub.subscriptions.carried(connection, name[len(SUB):], principal, subscribed=value is not None)

    # -- a change made here -------------------------------------------------------------------

    async def share_level(self, connection: Any, level: str) -> None:
        """The session's `logging/setLevel`, taken here: for every replica."""
        await self._share(connection, LEVEL, level)

    async def share_subscription(self, connection: Any, uri: str, subscribed: bool) -> None:
        """The session's `resources/subscribe` (or `unsubscribe`), taken here: for every replica."""
        await self._share(connection, SUB + uri, "1" if subscribed else None)

    async def _share(self, connection: Any, name: str, value: str | None) -> None:
        digest = session_digest(connection)
        if digest is None:
            return
        key = KEY_PREFIX + digest
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S):
                pipe = self._notifier._redis.pipeline(transaction=True)  # noqa: SLF001 — same Redis
                if value is None:
                    pipe.hdel(key, name)
                else:
                    pipe.hset(key, name, value)
                pipe.expire(key, self._ttl_s)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 — the change holds here; logged, never the client's error
            self._warn("write", exc)
            return
        self._failing = False
        await self._notifier.publish(self._sealed({"type": EVENT, "session": digest, "name": name, "value": value}))

    def _sealed(self, event: dict[str, Any]) -> dict[str, Any]:
        """`event` as it crosses Redis: sealed for this deployment's replicas (as is, without secrets)."""
        if self._messages is None:
            return event
        return {"type": event["type"], "sealed": self._messages.seal(event)}

    def _opened(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """What another replica's event carries; None when it is not sealed by a replica of this deployment
        (or altered, stale, replayed)."""
        if self._messages is None:
            return event
        opened = self._messages.open(event.get("sealed"))
        if opened is None or opened.get("type") != event.get("type"):
            logger.warning("ignored a %s from Redis that is not sealed by a replica of this hub, altered, stale "
                           "or replayed", event.get("type"))
            return None
        return opened

    async def _changed(self, event: dict[str, Any]) -> None:
        """Another replica changed a session: applied to its copy here, if any."""
        opened = self._opened(event)
        if opened is None:
            return
        digest, name, value = opened.get("session"), opened.get("name"), opened.get("value")
        held = self._held.get(digest) if isinstance(digest, str) else None
        connection = held[0]() if held is not None else None
        if connection is None or not isinstance(name, str) or not (value is None or isinstance(value, str)):
            return
        assert held is not None
        self._apply(connection, held[1], name, value)

    async def notify_elsewhere(self, connection: Any, method: str, params: dict[str, Any]) -> None:
        """A notification for this session, sent to its copy here: also to its copies on the other replicas
        (its GET stream may be there; where it is not, the transport keeps it for a resume, as here)."""
        digest = session_digest(connection)
        if digest is not None and method in CARRIED_NOTIFICATIONS:
            await self._notifier.publish(self._sealed({"type": NOTIFY, "session": digest, "method": method,
                                                       "params": params}))

    async def _notified(self, event: dict[str, Any]) -> None:
        opened = self._opened(event)
        if opened is None:
            return
        event = opened
        held = self.held(event["session"]) if isinstance(event.get("session"), str) else None
        method, params = event.get("method"), event.get("params")
        if held is not None and method in CARRIED_NOTIFICATIONS and isinstance(params, dict):
            await held[0].notify(str(method), params)

    def held(self, digest: str) -> tuple[Connection, Principal] | None:
        """This replica's connection of the session `digest` and its principal, or None (no copy here)."""
        held = self._held.get(digest)
        connection = held[0]() if held is not None else None
        if connection is None or held is None or connection in _CLOSED:
            return None  # a copy closed here is no copy, though the connection object lingers
        return connection, held[1]

    def _warn(self, what: str, exc: Exception) -> None:
        if not self._failing:
            logger.warning("could not %s a session's log level and subscriptions in Redis (%s); they hold only "
                           "on the replica that took them until Redis answers again", what, type(exc).__name__)
        self._failing = True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
