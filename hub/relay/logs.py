"""Log messages through the hub: `logging/setLevel` fanned out, `notifications/message` relayed back.

Rules (docs/domains.md, "Protocol relay"):
- A client opts in to downstream logs with `logging/setLevel` (handshake era; the 2026-07-28 era
  deprecates logging and has no such request). From then on it receives every downstream's
  `notifications/message` at or above its level, from the servers it may see (`may_see_server`),
  nothing from the others. A client that never asked receives none, so ten servers' chatter never
  floods an IDE that did not want it.
- The message's `logger` names its server: the namespace (the server key when the namespace is
  empty), or `<namespace>/<logger>` when the server named a logger. `level` and `data` pass intact.
- A shared downstream session serves every client, so each downstream that advertises `logging`
  is set to the most verbose level any live client asked for; each client is then filtered at its
  own level by the hub. A `per_client` server's session of one client gets that client's own level
  (at setLevel if open, else when it opens), and its messages go to that client only. A setLevel answers once every such downstream answered (or 5 s passed);
  one that fails is logged, never an error for the client.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.errors import describe_failure
from hub.relay.scope import may_see_server

if TYPE_CHECKING:
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

logger = logging.getLogger("hub.relay.logs")

LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
RANK = {level: rank for rank, level in enumerate(LEVELS)}
SET_LEVEL_TIMEOUT_S = 5.0

# The hub relays logging on purpose (every handshake-era client uses it): no warning per setLevel.
warnings.filterwarnings("ignore", message="The logging capability is deprecated", category=MCPDeprecationWarning)


def tag_logger(namespace: str, server_logger: str | None) -> str:
    """The `logger` a relayed message carries: the server's namespace, then its own logger if any."""
    return f"{namespace}/{server_logger}" if server_logger else namespace


class LogRelay:
    """Per client connection: the level it asked for and who it is; per downstream: the level sent."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._clients: weakref.WeakKeyDictionary[Connection, tuple[str, Principal]] = weakref.WeakKeyDictionary()
        self._sent: dict[str, tuple[int, str]] = {}
        """Per server: (id of the client session, level) last set on it — a reconnect is a new session."""

    async def set_level(self, connection: Connection, level: str, principal: Principal) -> None:
        """A client's `logging/setLevel`: remember it, then bring every logging downstream in line —
        the shared sessions, and the client's own open sessions of `per_client` servers (one it opens
        later gets the level in `prepare`)."""
        self._clients[connection] = (level, principal)
        await self.fan_out()
        async with anyio.create_task_group() as tg:
            for downstream in self._hub.downstreams.values():
                client = downstream.pool.client_of(connection) if downstream.pool is not None else None
                if client is not None and may_see_server(self._hub, principal, downstream.name):
                    tg.start_soon(self._apply, downstream, client, level)

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
        key = (id(client.session), level)
        if self._sent.get(downstream.name) == key:
            return
        if await self._apply(downstream, client, level):
            self._sent[downstream.name] = key

    async def _apply(self, downstream: Downstream, client: Any, level: str) -> bool:
        """`logging/setLevel` on one session of a handshake-era server advertising logging; True if it answered."""
        if client.server_capabilities.logging is None or client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return False
        try:
            with anyio.fail_after(SET_LEVEL_TIMEOUT_S):
                await client.set_logging_level(level)
            return True
        except Exception as exc:  # boundary: one server's refusal is its problem, not the client's
            downstream.log.warning("logging/setLevel %s not applied: %s", level, describe_failure(exc))
            return False

    async def relay(self, downstream: Downstream, params: types.LoggingMessageNotificationParams, owner: Any = None) -> None:
        """Pass one downstream log message to every client that asked for its level and may see the
        server; one from a per-client session (`owner`) to that session's client only."""
        if not self._clients:
            return
        rank = RANK.get(params.level, 0)
        body: dict[str, Any] | None = None
        clients = list(self._clients.items()) if owner is None else [(owner, self._clients[owner])] if owner in self._clients else []
        for connection, (level, principal) in clients:
            if rank < RANK[level] or not may_see_server(self._hub, principal, downstream.name):
                continue
            if body is None:
                body = params.model_dump(by_alias=True, mode="json", exclude_none=True)
                body["logger"] = tag_logger(downstream.config.namespace or downstream.name, params.logger)
            await connection.notify("notifications/message", body)  # best effort: never raises
