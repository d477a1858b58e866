"""Where each URL-mode elicitation went, so that the server's `notifications/elicitation/complete`
for it reaches that client and no other (docs/protocol.md, "Protocol relay").

An elicitation is remembered when the hub relays a server's URL-mode `elicitation/create` to a client,
or when a client gets a server's -32042 (URL elicitation required) whole. Keyed by (server, the
per-client session's owner or 0, elicitationId): two clients' own sessions may choose alike ids.
The completion goes on the call's stream while the call runs, else on the client's own stream — the
connection is kept (weakly), since the per-request session dies with its request and the flow in the
browser often ends after the call."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Collection
from typing import Any

import mcp_types as types
from mcp.server.session import ServerSession

from hub.auth.principal import Principal, identity
from hub.downstream.owners import current_owner
from hub.relay.fair_cap import FairCap
from hub.redact import mask_short
from hub.relay.upstream import UpstreamCall

logger = logging.getLogger("hub.relay")

MAX_URL_ELICITATIONS = 1000
"""At most this many are remembered (the caller holding the most loses its oldest: `FairCap`)."""
MAX_PER_CALLER = 100
"""At most this many of one server for one principal (their own oldest go first): one server's flood
of ids, or one caller's flood of calls, must not crowd out the elicitations others wait on (re-check
of round 8; outside review, isolation round 10: 100 of caller B's lost caller A's completion)."""

_Where = tuple[weakref.ref[ServerSession], weakref.ref[Any] | None, UpstreamCall | None]


class UrlElicitations:
    """The URL-mode elicitations relayed to clients, by (server, owner key, elicitationId)."""

    def __init__(self, in_flight: Callable[[str], Collection[UpstreamCall]], has_pool: Callable[[str], bool]) -> None:
        self._in_flight = in_flight
        self._has_pool = has_pool
        self._where: FairCap[tuple[str, int, str], _Where] = FairCap(MAX_PER_CALLER, MAX_URL_ELICITATIONS)

    def relayed(self, server: str, owner: Any, request: Any, session: ServerSession, upstream: UpstreamCall | None,
                principal: Principal) -> None:
        """A server's `elicitation/create` went to `principal`'s client of `session` (remembered if
        URL-mode); `owner`: the per-client session's owner it came on (None: the shared session)."""
        elicitation_id = getattr(request.params, "elicitation_id", None) if isinstance(request, types.ElicitRequest) else None
        if isinstance(elicitation_id, str):
            self._keep((server, _owner_key(owner), elicitation_id), principal, session, upstream)

    def required(self, server: str, elicitation_ids: list[str], session: ServerSession, principal: Principal) -> None:
        """A server answered `principal`'s request with -32042 and the client got it whole: each
        elicitation's completion goes to that client (on its own stream: the request has ended)."""
        owner = _owner_key(current_owner()) if self._has_pool(server) else 0
        for elicitation_id in elicitation_ids:
            self._keep((server, owner, elicitation_id), principal, session, None)

    def _keep(self, key: tuple[str, int, str], principal: Principal, session: ServerSession,
              upstream: UpstreamCall | None) -> None:
        connection = getattr(session, "_connection", None)  # no public accessor; outlives the per-request session
        where = (weakref.ref(session), weakref.ref(connection) if connection is not None else None, upstream)
        self._where.put(key, (key[0], identity(principal)), where)

    async def completed(self, downstream: Any, params: types.ElicitCompleteNotificationParams, owner: Any = None) -> None:
        """A server's `notifications/elicitation/complete`: to the client its elicitation of that id went
        to, and to no one for an id it sent no client (outside review, relay round 7: never relayed, so
        a client never learned that an OAuth or payment flow had finished)."""
        where = self._where.pop((downstream.name, _owner_key(owner), params.elicitation_id))
        session, connection, upstream = ((where[0](), where[1]() if where[1] is not None else None, where[2])
                                         if where is not None else (None, None, None))
        running = upstream is not None and upstream in self._in_flight(downstream.name)
        try:
            if running and session is not None:
                await session.send_elicit_complete(params.elicitation_id, upstream.request_id)  # type: ignore[union-attr]
            elif connection is not None:  # the per-request session is gone with its request: the client's own stream
                await connection.notify("notifications/elicitation/complete", {"elicitationId": params.elicitation_id})
            elif session is not None:
                await session.send_elicit_complete(params.elicitation_id)
            else:
                logger.debug("elicitation/complete from %s for an elicitation no client of this hub got; dropped",
                             mask_short(downstream.name))
        except Exception as exc:  # noqa: BLE001 — best effort, as every relayed notification
            logger.debug("elicitation/complete not relayed: %s", type(exc).__name__)


def _owner_key(owner: Any) -> int:
    """The key of a per-client session's owner (0: the shared session)."""
    return id(owner) if owner is not None else 0
