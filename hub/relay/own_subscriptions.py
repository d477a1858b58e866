"""A client's resource subscriptions on its own session of a `per_client` handshake-era server
(`hub.relay.subscriptions` keeps who holds what; this module makes and renews them downstream).

Each subscription is made on the client's own session (`Downstream.own_session`) and recorded on it
(`SessionPool.pin`, keyed by the server's URI), which holds the session open while it has any. When
that session ends with its server — its child exited, its event stream ended, the server answered
"session not found" (HTTP 404) — `renew` subscribes each URI the client still holds on its new session.

Decision (relay round 15), for a "session not found" answer (`is_session_ended`): the server did not
serve the request, and the dead session is ended (its other subscriptions renewed, `on_lost_pins`).
- `resources/subscribe` is sent once more, transparently, on the new session: subscribing is safe to
  repeat, and a watcher that only (un)subscribes must not be refused for ever (it was: -32600 to
  every subscribe until some tool call happened to end the session).
- `resources/unsubscribe` is answered as done: the subscription ended with the session.
- A second "session not found" in a row is the retryable `session_ended` refusal, as JSON-RPC
  -32603 with the refusal's body as `data` (as a `max_sessions` refusal is).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hub.auth.principal import Principal
from hub.downstream.owned import is_session_ended
from hub.downstream.owners import bind_owner
from hub.downstream.request_deadline import request_deadline, within_deadline
from hub.errors import HubRefusal, HubToolError
from hub.forwarded import jsonrpc_error

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.downstream.connection import Downstream

async def subscribe_own(config: HubConfig, downstream: Downstream, connection: Any, original: str, *,
                        subscribe: bool) -> None:
    """(Un)subscribe `original` on `connection`'s own session of `downstream` (see the module for a
    "session not found" answer), within that request's deadline (`hub.downstream.request_deadline`);
    its updates reach that client only."""
    pool = downstream.pool
    assert pool is not None
    if not subscribe and pool.client_of(connection) is None:
        return  # its session is gone, and its subscriptions with it
    method = "resources/subscribe" if subscribe else "resources/unsubscribe"
    seconds, setting = request_deadline(config.hub, downstream.config, method)
    for attempt in range(2):
        try:
            async with downstream.own_session(connection) as client:
                sent = (client.session.subscribe_resource(original) if subscribe
                        else client.session.unsubscribe_resource(original))
                await within_deadline(downstream, method, sent, seconds, setting)
                pool.pin(connection, original, subscribe)  # on the session it was sent on
            return
        except HubRefusal as exc:
            if is_session_ended(exc) and not subscribe:
                return  # ended with the session
            if is_session_ended(exc) and not attempt:
                continue  # once more, on the new session
            # `max_sessions` reached, or ended again: the refusal's body as the error's data
            raise jsonrpc_error(exc) from exc
        except HubToolError as exc:  # past its deadline
            raise jsonrpc_error(exc) from exc


async def renew(config: HubConfig, downstream: Downstream, held: Iterable[tuple[Any, Principal, str]]) -> None:
    """Subscribe each held `(connection, principal, original URI)` that its connection's current session
    lacks (that session ended with its server, or was opened since by another request); best effort."""
    pool = downstream.pool
    assert pool is not None
    for connection, principal, original in held:
        if original in pool.pins_of(connection):
            continue
        try:
            with bind_owner(connection, principal=principal):
                await subscribe_own(config, downstream, connection, original, subscribe=True)
        except Exception as exc:  # noqa: BLE001 — logged; the client's next subscribe retries
            downstream.log.warning("could not renew a client's subscription to %s: %s", original, type(exc).__name__)
