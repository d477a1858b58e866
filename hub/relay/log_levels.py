"""`logging/setLevel` of handshake-era clients, fanned out (a mixin of `hub.relay.logs.LogRelay`): each
client's level remembered (a client that never set one noted at its handshake, `arrived`: it gets every
level, see `hub.relay.logs`), shared with the other replicas holding its session, and each downstream
that advertises `logging` set to the most verbose level any live client asked for (a `per_client`
session of one client to that client's own level). The rules are in `hub.relay.logs`.

That level is derived state, recomputed whenever one of its inputs changes (outside review relay26
D2, D4: it was computed only at a client's setLevel):
- a client's setLevel (`set_level`, `carried`);
- a client's connection ending (its `exit_stack`, as per-client sessions are closed): its level no
  longer counts, and every downstream set is brought to what the clients left want. Decision: with no
  client left that asked, a downstream that was set is set to `QUIET` (`emergency`, the least verbose
  level: `logging/setLevel` has no "off"); the hub relays nothing of it to anyone then;
- a downstream's new shared session (first connect, crash restart, console Restart, an HTTP server's
  "session not found" reconnect: `renew`, before it is marked ready), which has no level of its own.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.connection import Connection
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.downstream.serials import session_serial
from hub.errors import describe_failure
from hub.relay.scope import may_see_server

if TYPE_CHECKING:
    from hub.cluster.session_state import SessionState
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

__all__ = ["LEVELS", "QUIET", "RANK", "SET_LEVEL_TIMEOUT_S", "LevelFanOut"]

LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
RANK = {level: rank for rank, level in enumerate(LEVELS)}
SET_LEVEL_TIMEOUT_S = 5.0
QUIET = LEVELS[-1]
"""The level a set downstream is brought to once no live client asks for any (see the module doc)."""
_FORGET_ON_CLOSE = "hub.relay.log_levels.forget_on_close"


class LevelFanOut:
    """The handshake-era clients' levels and what was set on each downstream (state on `LogRelay`)."""

    _hub: Hub
    _clients: weakref.WeakKeyDictionary[Connection, tuple[str, Principal]]
    _unfiltered: weakref.WeakKeyDictionary[Connection, Principal]
    _sent: dict[str, tuple[int, str]]

    def arrived(self, connection: Any, principal: Principal) -> None:
        """A handshake-era client finished its handshake (`notifications/initialized`): until it sends
        `logging/setLevel` it has not filtered, so it gets its servers' messages at whatever level they
        send (`hub.relay.logs`, "A client that never set a level"); its connection's end forgets it. The
        hub sends no `logging/setLevel` for it: a server keeps its own default until a client asks."""
        if (connection is None or getattr(connection, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS
                or connection in self._clients):
            return  # a 2026-07-28 client opts in per request (`hub.relay.logs`); one that set a level is filtered
        self._unfiltered[connection] = principal
        self._forget_on_close(connection)

    def listeners(self) -> list[tuple[Connection, str | None, Principal]]:
        """Every handshake-era client a message may reach: (connection, the level it set or None for one
        that never set any, its principal)."""
        found: list[tuple[Connection, str | None, Principal]] = [
            (connection, level, principal) for connection, (level, principal) in list(self._clients.items())]
        found += [(connection, None, principal) for connection, principal in list(self._unfiltered.items())
                  if connection not in self._clients]
        return found

    def listener(self, connection: Any) -> tuple[str | None, Principal] | None:
        """(the level `connection` set, or None for a client that never set one; its principal), or None
        when it is no handshake-era client the hub relays log messages to."""
        asked = self._clients.get(connection)
        if asked is not None:
            return asked
        principal = self._unfiltered.get(connection)
        return (None, principal) if principal is not None else None

    async def set_level(self, connection: Connection, level: str, principal: Principal) -> None:
        """A client's `logging/setLevel`: remember it, then bring every logging downstream in line —
        the shared sessions, and the client's own open sessions of `per_client` servers (one it opens
        later gets the level in `prepare`)."""
        self._remember(connection, level, principal)
        carried = _carried(self._hub)
        if carried is not None:  # the session's level on every replica (its GET stream may be on another)
            await carried.share_level(connection, level)
        await self._bring_in_line(connection, level, principal)

    def carried(self, connection: Connection, level: str, principal: Principal) -> None:
        """The level this session's client set on another replica (`hub.cluster.session_state`): held for
        its copy here at once, the downstreams brought in line in the background."""
        if level not in RANK:
            return
        self._remember(connection, level, principal)
        group = getattr(self._hub, "_task_group", None)
        if group is not None:
            group.start_soon(self._bring_in_line, connection, level, principal)

    def _remember(self, connection: Connection, level: str, principal: Principal) -> None:
        """Hold the client's level while its connection lives; its teardown (stdio EOF, SSE stream closed,
        Streamable HTTP DELETE or expiry) forgets it and brings the downstreams in line (`_forget`)."""
        self._clients[connection] = (level, principal)
        self._unfiltered.pop(connection, None)  # it has filtered now
        self._forget_on_close(connection)

    def _forget_on_close(self, connection: Connection) -> None:
        state, stack = getattr(connection, "state", None), getattr(connection, "exit_stack", None)
        if isinstance(state, dict) and stack is not None and not state.get(_FORGET_ON_CLOSE):
            state[_FORGET_ON_CLOSE] = True
            stack.callback(self._forget, weakref.ref(connection))

    def _forget(self, ref: weakref.ref[Connection]) -> None:
        connection = ref()
        if connection is None:
            return
        self._unfiltered.pop(connection, None)
        if self._clients.pop(connection, None) is None:
            return
        group = getattr(self._hub, "_task_group", None)
        if group is not None:  # not in the connection's teardown: that must not wait on servers
            group.start_soon(self.fan_out)

    async def renew(self, downstream: Downstream, client: Any) -> None:
        """A new shared session of `downstream` (it has no level yet): set the level the live clients want."""
        level = self.wanted_level()
        if level is not None and await self._apply(downstream, client, level):
            self._sent[downstream.name] = (session_serial(client.session), level)

    async def _bring_in_line(self, connection: Connection, level: str, principal: Principal) -> None:
        await self.fan_out()
        async with anyio.create_task_group() as tg:
            for downstream in self._hub.downstreams.values():
                client = downstream.pool.client_of(connection) if downstream.pool is not None else None
                if client is not None and may_see_server(self._hub, principal, downstream.name):
                    tg.start_soon(self._apply_own, downstream, connection, level)

    async def _apply_own(self, downstream: Downstream, connection: Connection, level: str) -> None:
        """`logging/setLevel` on the client's own open session. One the server answers "session not found"
        is ended (`Downstream.own_session`, as a child exit ends one): not asked again, the new session its
        next request opens gets the level in `prepare`."""
        try:
            async with downstream.own_session(connection) as client:
                await self._apply(downstream, client, level, raising=True)
        except Exception as exc:  # noqa: BLE001 — one server's refusal is its problem, not the client's
            downstream.log.warning("logging/setLevel %s not applied: %s", level, describe_failure(exc))

    async def prepare(self, downstream: Downstream, owner: Any, client: Any) -> None:
        """A per-client session was opened for `owner`: give it the level its client asked for, if any."""
        asked = self._clients.get(owner)
        if asked is not None and may_see_server(self._hub, asked[1], downstream.name):
            await self._apply(downstream, client, asked[0])

    def wanted_level(self) -> str | None:
        """The most verbose level a live client asked for, or None (nobody listens)."""
        ranks = [RANK[level] for level, _ in list(self._clients.values())]
        return LEVELS[min(ranks)] if ranks else None

    async def fan_out(self) -> None:
        """Send the wanted level to each connected handshake-era downstream that advertises logging; with
        no client asking, `QUIET` to each that was set (see the module doc)."""
        wanted = self.wanted_level()
        level = wanted or QUIET
        async with anyio.create_task_group() as tg:
            for downstream in self._hub.downstreams.values():
                if wanted is not None or downstream.name in self._sent:
                    tg.start_soon(self._set_one, downstream, level)

    async def _set_one(self, downstream: Downstream, level: str) -> None:
        try:
            client = downstream.client()
        except Exception:  # noqa: BLE001 — down: nothing to set; its new session is set when it connects (`renew`)
            return
        key = (session_serial(client.session), level)
        if self._sent.get(downstream.name) == key:
            return
        if await self._apply(downstream, client, level):
            self._sent[downstream.name] = key

    async def _apply(self, downstream: Downstream, client: Any, level: str, *, raising: bool = False) -> bool:
        """`logging/setLevel` on one session of a handshake-era server advertising logging; True if it
        answered (a failure is logged, or with `raising` raised)."""
        if client.server_capabilities.logging is None or client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return False
        try:
            with anyio.fail_after(SET_LEVEL_TIMEOUT_S):
                await client.set_logging_level(level)
            return True
        except Exception as exc:  # boundary: one server's refusal is its problem, not the client's
            if raising:
                raise
            downstream.log.warning("logging/setLevel %s not applied: %s", level, describe_failure(exc))
            return False


def _carried(hub: Hub) -> SessionState | None:
    """Where sessions' levels are shared between replicas (`hub.cluster.redis_url`), else None (one replica)."""
    notifier = getattr(hub, "cluster_notify", None)
    return notifier.sessions if notifier is not None else None
