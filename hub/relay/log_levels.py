"""`logging/setLevel` of handshake-era clients, fanned out (a mixin of `hub.relay.logs.LogRelay`): each
client's level remembered, shared with the other replicas holding its session, and each downstream
that advertises `logging` set to the most verbose level any live client asked for (a `per_client`
session of one client to that client's own level). The rules are in `hub.relay.logs`."""

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

__all__ = ["LEVELS", "RANK", "SET_LEVEL_TIMEOUT_S", "LevelFanOut"]

LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
RANK = {level: rank for rank, level in enumerate(LEVELS)}
SET_LEVEL_TIMEOUT_S = 5.0


class LevelFanOut:
    """The handshake-era clients' levels and what was set on each downstream (state on `LogRelay`)."""

    _hub: Hub
    _clients: weakref.WeakKeyDictionary[Connection, tuple[str, Principal]]
    _sent: dict[str, tuple[int, str]]

    async def set_level(self, connection: Connection, level: str, principal: Principal) -> None:
        """A client's `logging/setLevel`: remember it, then bring every logging downstream in line —
        the shared sessions, and the client's own open sessions of `per_client` servers (one it opens
        later gets the level in `prepare`)."""
        self._clients[connection] = (level, principal)
        carried = _carried(self._hub)
        if carried is not None:  # the session's level on every replica (its GET stream may be on another)
            await carried.share_level(connection, level)
        await self._bring_in_line(connection, level, principal)

    def carried(self, connection: Connection, level: str, principal: Principal) -> None:
        """The level this session's client set on another replica (`hub.cluster.session_state`): held for
        its copy here at once, the downstreams brought in line in the background."""
        if level not in RANK:
            return
        self._clients[connection] = (level, principal)
        group = getattr(self._hub, "_task_group", None)
        if group is not None:
            group.start_soon(self._bring_in_line, connection, level, principal)

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
        """Send the wanted level to each connected handshake-era downstream that advertises logging."""
        level = self.wanted_level()
        if level is None:
            return
        async with anyio.create_task_group() as tg:
            for downstream in self._hub.downstreams.values():
                tg.start_soon(self._set_one, downstream, level)

    async def _set_one(self, downstream: Downstream, level: str) -> None:
        try:
            client = downstream.client()
        except Exception:  # noqa: BLE001 — down: nothing to set; a reconnect is set on the next setLevel
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
