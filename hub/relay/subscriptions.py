"""Resource subscriptions through the hub, in both protocol eras on both sides: a client subscribes
with `resources/subscribe` (2025-11-25) or lists URIs in a `subscriptions/listen` stream
(2026-07-28); the hub subscribes the owning server with `resources/subscribe` (handshake-era
server) or holds one `subscriptions/listen` stream per 2026-07-28 server naming every URI its
clients hold; `notifications/resources/updated` comes back only to the clients subscribed.

Rules (docs/domains.md, "Protocol relay"; docs/events.md, "Subscribable resources"):
- A client subscribes to the URI it sees (`mcphub://<namespace>/<uri>`, or the bare URI for an
  empty namespace). The hub resolves it as `resources/read` does: a URI of no server, or of a
  server the client may not read, is -32002 "Resource not found" — subscribing never reveals
  more than reading. A server that cannot take subscriptions (a handshake-era one that did not
  advertise `resources.subscribe`, or one without resources) is -32602 naming it.
- A caller (principal) holds at most `hub.http.max_sessions_per_principal` listen streams at once, and
  all callers `hub.http.max_sessions`: the next is refused `rate_limited` (review isolation16: one key
  held the SDK's 1,024 streams and every other 2026-07-28 client lost its change notifications).
- A 2026-07-28 client's `subscriptions/listen` is acknowledged with the URIs the hub can deliver:
  one it may not read, of no server, or of a server that cannot take subscriptions (or is down)
  is left out of the acknowledged `resourceSubscriptions` (the same answer for all three, so
  nothing leaks); at most `MAX_LISTEN_URIS` per stream. The server is subscribed before the
  acknowledgment, so an update after it is delivered. Scopes are checked when the stream opens
  (the stream is one request: a client whose scopes change re-listens).
- A `per_client` handshake-era server: each client's subscription is made on, and removed from,
  its own downstream session (held open while it has any; `hub.relay.own_subscriptions`, also for a
  session that ends with its server), and that session's updates go to that client only. A 2026-07-28 client's listen stream has no session of its own (its requests each get
  a session released when answered), so its URIs are held on the shared session as for any server.
- A handshake-era client's session (connection) holds at most `MAX_SUBSCRIPTIONS_PER_CONNECTION`
  subscriptions, as a listen stream holds at most `MAX_LISTEN_URIS`: the next `resources/subscribe` is
  refused -32602 saying to unsubscribe first (outside review relay26 D5: 1,500 were taken, each a
  downstream round trip). When its connection ends (stdio EOF, SSE stream closed, Streamable HTTP DELETE
  or expiry), its subscriptions are released at once (relay26 D5: they outlived it until an update for
  that very URI came).
- A shared downstream session: the hub subscribes it once per resource (on the first
  client) and lets go when the last client leaves (unsubscribes, or its connection ends). A 2026-07-28 server's stream is replaced (new stream acknowledged first, then the old
  one closed, so no update falls in a gap) whenever the set of URIs changes. A downstream that
  reconnected is a new session: `resubscribe` renews every live subscription on it.
- An update is rewritten to the exposed URI and sent to each subscribed handshake-era client that
  may still read the server (scopes are checked again at delivery) on its standalone channel, and
  published once on the hub's listen bus for 2026-07-28 streams; best effort.
- Several replicas: a sealed session's subscriptions are shared with every replica holding a copy of it
  (`hub.cluster.session_state`, `carried`), which subscribes its own server too.
- `resources.subscribe` is advertised to handshake-era clients while any server can take
  subscriptions, or while any is still connecting (its support is not known yet, and an
  initialize never waits for servers).

Split by responsibility: each connection's bookkeeping (what it holds, its cap, its release when it ends,
copies carried from other replicas) is `hub.relay.connection_subscriptions`; the listen stream held on each
2026-07-28 server is `hub.relay.server_streams`; this module ties them to the servers and relays updates.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.subscriptions import ListenHandler, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.catalog.naming import namespaced_uri
from hub.downstream.connection import DownstreamUnavailable
from hub.downstream.request_deadline import request_deadline
from hub.downstream.serials import session_serial
from hub.forwarded import admitted, limits_of, within_request_deadline
from hub.relay.connection_subscriptions import (
    MAX_LISTEN_URIS,
    MAX_SUBSCRIPTIONS_PER_CONNECTION,
    RESOURCE_NOT_FOUND,
    ConnectionSubscriptions,
)
from hub.relay.listen_streams import HubListenHandler
from hub.relay.own_subscriptions import renew, subscribe_own
from hub.relay.server_streams import ServerStream, ServerStreams

if TYPE_CHECKING:
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

logger = logging.getLogger("hub.relay.subscriptions")

__all__ = ["MAX_LISTEN_URIS", "MAX_SUBSCRIPTIONS_PER_CONNECTION", "RESOURCE_NOT_FOUND", "ResourceSubscriptions",
           "supports_subscribe"]


# The hub relays handshake-era subscriptions on purpose: no warning per subscribe.
warnings.filterwarnings("ignore", message="resources/(un)?subscribe", category=MCPDeprecationWarning)


def _modern(client: Any) -> bool:
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS


def supports_subscribe(downstream: Downstream) -> bool:
    """Whether a connected server can take subscriptions: a handshake-era one that advertised
    `resources.subscribe`, or a 2026-07-28 one with resources (`subscriptions/listen` is core)."""
    try:
        client = downstream.client()
    except Exception:  # noqa: BLE001 — down: no support now
        return False
    caps = client.server_capabilities.resources
    return caps is not None and (_modern(client) or bool(caps.subscribe))


class ResourceSubscriptions(ConnectionSubscriptions, ServerStreams):
    """Per exposed URI: the clients subscribed (handshake-era connections held weakly, and a count of
    2026-07-28 listen streams) and the downstream session it was subscribed on."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._clients: dict[str, weakref.WeakKeyDictionary[Connection, Principal]] = {}
        self._listeners: dict[str, int] = {}
        """Exposed URI -> how many open 2026-07-28 listen streams acknowledged it."""
        self._by_connection: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        """Handshake-era connection -> the exposed URIs it holds (its cap; released when it ends)."""
        self._downstream: dict[str, tuple[str, str, int]] = {}
        """Exposed URI -> (server, original URI, id of the downstream session subscribed)."""
        self._streams: dict[str, ServerStream] = {}
        """Server name -> the listen stream held on it (2026-07-28 servers)."""
        self._buses: list[SubscriptionBus] = []
        """The listen buses of the hub's MCP servers (one per profile)."""
        self.streams_of: Counter[tuple[str, str]] = Counter()
        """Open 2026-07-28 listen streams per principal (`identity`), across every profile's handler."""
        self.watch: Any = None
        """The HTTP front's `CredentialWatch`: a listen stream ends once its credential is no longer valid."""

    def advertised(self) -> bool:
        """The `resources.subscribe` the hub advertises (see the module's rules)."""
        return any(d.state == "starting" or supports_subscribe(d) for d in self._hub.downstreams.values())

    def listen_handler(self, bus: SubscriptionBus, caller: Callable[[], Principal]) -> ListenHandler:
        """The hub's `subscriptions/listen` handler: the SDK's, publishing on `bus`, with the
        requested resource URIs held downstream for as long as the stream is open."""
        self._buses.append(bus)
        limits = self._hub.config.hub.http
        return HubListenHandler(bus, self, caller, per_principal=limits.max_sessions_per_principal,
                                 max_subscriptions=limits.max_sessions)

    def _resolve(self, uri: str, principal: Principal) -> tuple[str, str]:
        target = self._hub.catalog.resolve_uri(uri)
        if target is None or not self._hub.access.may_read(principal, target[0]):
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}")
        return target

    def _target(self, uri: str, principal: Principal) -> tuple[Downstream, str]:
        """The server that takes a subscription to `uri`, and its own URI (refusals as the module says)."""
        server, original = self._resolve(uri, principal)
        downstream = self._hub.downstreams[server]
        if not supports_subscribe(downstream):
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"server {server!r} does not support resource subscriptions (or is down); "
                                   f"read {uri} again instead")
        return downstream, original

    async def subscribe(self, connection: Connection, uri: str, principal: Principal) -> None:
        """A client's `resources/subscribe`: remember it, and subscribe the server if not yet — for a
        `per_client` server, on the client's own session each time, as a direct client would (idempotent;
        a session its server has forgotten is ended and the subscription made on a new one: relay round
        15, where subscribing again did nothing because it was recorded as held)."""
        downstream, original = self._target(uri, principal)
        held, fresh = self._reserve(connection, uri)
        try:
            seconds, _ = request_deadline(self._hub.config.hub, downstream.config, "resources/subscribe")
            # Admitted as a read is (`hub.forwarded.admitted`): subscribing to URI after URI is a flood too.
            async with admitted(limits_of(self._hub), downstream.name, principal, "resources/subscribe", seconds):
                if _per_client(downstream):
                    await subscribe_own(self._hub.config, downstream, connection, original, subscribe=True)
                else:
                    await self._ensure(downstream, uri, original)
        except BaseException:
            if fresh:
                held.discard(uri)
            raise
        self._hold(connection, uri, principal)
        await self._share(connection, uri, subscribed=True)

    async def _carried_start(self, connection: Connection, uri: str, server: str, original: str) -> None:
        try:
            downstream = self._hub.downstreams[server]
            if _per_client(downstream):
                await subscribe_own(self._hub.config, downstream, connection, original, subscribe=True)
            elif supports_subscribe(downstream):
                await self._ensure(downstream, uri, original)
        except Exception as exc:  # noqa: BLE001 — best effort: updates relayed from other replicas still arrive
            logger.info("a carried subscription to %s is not held on server %s: %s", uri, server, type(exc).__name__)

    async def _carried_end(self, connection: Connection, uri: str) -> None:
        target = self._hub.catalog.resolve_uri(uri)
        downstream = self._hub.downstreams.get(target[0]) if target is not None else None
        try:
            if target is not None and downstream is not None and _per_client(downstream):
                await subscribe_own(self._hub.config, downstream, connection, target[1], subscribe=False)
        except Exception as exc:  # noqa: BLE001 — best effort, as an unsubscribe
            logger.debug("a carried unsubscribe from %s not sent: %s", uri, type(exc).__name__)
        await self._release_if_unused(uri)

    async def unsubscribe(self, connection: Connection, uri: str, principal: Principal) -> None:
        """A client's `resources/unsubscribe`: forget it; the last one out unsubscribes the server
        (a `per_client` server: the client's own session at once). Unsubscribing from something not
        subscribed is a no-op, as it is for servers."""
        server, original = self._resolve(uri, principal)
        held = self._drop(connection, uri)
        downstream = self._hub.downstreams[server]
        try:
            if held and _per_client(downstream):
                await subscribe_own(self._hub.config, downstream, connection, original, subscribe=False)
        except Exception as exc:  # noqa: BLE001 — the server is down or forgot that session: nothing is held there
            # (a client's unsubscribe after its per-client session's 404 failed with "server is down"; CI 2026-12-06)
            logger.debug("an unsubscribe from %s not sent to %s: %s", uri, server, type(exc).__name__)
        await self._release_if_unused(uri)
        await self._share(connection, uri, subscribed=False)

    async def hold_for_stream(self, uris: Iterable[str], principal: Principal) -> list[str]:
        """A 2026-07-28 client's listen stream opens: subscribe what it may read; the URIs held."""
        wanted = list(dict.fromkeys(uris))[:MAX_LISTEN_URIS]
        held: set[str] = set()
        streamed: dict[str, list[tuple[str, str]]] = {}
        """2026-07-28 servers: their URIs, added to their stream at once (one replacement, not one per URI)."""
        for uri in wanted:
            try:
                downstream, original = self._target(uri, principal)
                if _modern(downstream.client()):
                    streamed.setdefault(downstream.name, []).append((uri, original))
                    continue
                await self._ensure(downstream, uri, original)
            except Exception as exc:  # noqa: BLE001 — left out of the acknowledgment (module rules)
                logger.debug("listen: %s not held: %s", uri, type(exc).__name__)
                continue
            held.add(uri)
        for server, items in streamed.items():
            try:
                await self._ensure_streamed(self._hub.downstreams[server], items)
            except Exception as exc:  # noqa: BLE001 — left out of the acknowledgment (module rules)
                logger.debug("listen: %d URIs of %s not held: %s", len(items), server, type(exc).__name__)
                continue
            held.update(uri for uri, _ in items)
        for uri in held:
            self._listeners[uri] = self._listeners.get(uri, 0) + 1
        return [uri for uri in wanted if uri in held]

    async def release_stream(self, uris: Iterable[str]) -> None:
        """A listen stream ended: let go of its URIs."""
        for uri in uris:
            left = self._listeners.get(uri, 0) - 1
            if left > 0:
                self._listeners[uri] = left
            else:
                self._listeners.pop(uri, None)
            await self._release_if_unused(uri)

    def _in_use(self, uri: str) -> bool:
        return bool(self._clients.get(uri)) or self._listeners.get(uri, 0) > 0

    async def _ensure(self, downstream: Downstream, uri: str, original: str) -> None:
        client = downstream.client()
        session = session_serial(client.session)
        if self._downstream.get(uri) == (downstream.name, original, session):
            return
        if _modern(client):
            await self._ensure_streamed(downstream, [(uri, original)])
            return
        await within_request_deadline(self._hub.config, downstream, "resources/subscribe",
                                      client.session.subscribe_resource(original))
        self._downstream[uri] = (downstream.name, original, session)

    async def _release_if_unused(self, uri: str) -> None:
        if self._in_use(uri):
            return
        self._clients.pop(uri, None)
        sent = self._downstream.pop(uri, None)
        if sent is None:
            return
        server, original, session = sent
        try:
            downstream = self._hub.downstreams[server]
            stream = self._streams.get(server)
            if stream is not None and original in stream.uris:
                if not any(s == server and o == original for s, o, _ in self._downstream.values()):
                    stream.uris.discard(original)
                    await self._relisten(downstream, stream)
                return
            client = downstream.client()
            if session_serial(client.session) == session:
                await within_request_deadline(self._hub.config, downstream, "resources/unsubscribe",
                                              client.session.unsubscribe_resource(original))
        except Exception as exc:  # noqa: BLE001 — best effort: a reconnected session has no subscription anyway
            logger.debug("unsubscribing %s on %s not sent: %s", original, server, type(exc).__name__)

    async def resubscribe(self, downstream: Downstream) -> None:
        """After a server (re)connected: subscribe its new session to every URI clients still hold."""
        stream = self._streams.get(downstream.name)
        try:
            if stream is not None and stream.uris and _modern(downstream.client()):
                await self._relisten(downstream, stream)  # one stream for all of them
                session = session_serial(downstream.client().session)
                for uri, (server, original, _session) in list(self._downstream.items()):
                    if server == downstream.name:
                        self._downstream[uri] = (server, original, session)
                return
        except Exception as exc:  # noqa: BLE001 — logged; the client's next subscribe retries
            downstream.log.warning("could not renew the resource subscriptions: %s", type(exc).__name__)
            return
        for uri, (server, original, _session) in list(self._downstream.items()):
            if server != downstream.name or not self._in_use(uri):
                continue
            try:
                await self._ensure(downstream, uri, original)
            except Exception as exc:  # noqa: BLE001 — logged; the client's next subscribe retries
                downstream.log.warning("could not renew the subscription to %s: %s", original, type(exc).__name__)
        await self.resubscribe_own(downstream)

    async def resubscribe_own(self, downstream: Downstream) -> None:
        """Each client's subscriptions on a session of its own that has ended (a console Restart closes
        them with the server's process; its child crashed; the server answered 404), on a new one: they
        were recorded as held, so the client's updates stopped (re-checks of rounds 13 and 14, relay
        round 15). Each URI its current session lacks is subscribed (`own_subscriptions.renew`)."""
        try:
            if downstream.pool is None or not _per_client(downstream):
                return
        except DownstreamUnavailable:  # down: renewed when it is back (`resubscribe`)
            return
        held: list[tuple[Connection, Principal, str]] = []
        for uri, clients in list(self._clients.items()):
            for connection, principal in list(clients.items()):
                try:
                    server, original = self._resolve(uri, principal)
                except MCPError:  # no longer readable by it: not renewed
                    continue
                if server == downstream.name:
                    held.append((connection, principal, original))
        await renew(self._hub.config, downstream, held)

    async def relay(self, downstream: Downstream, params: types.ResourceUpdatedNotificationParams, owner: Any = None) -> None:
        """Send one server's `notifications/resources/updated` to the clients subscribed to it; one
        from a per-client session (`owner`) to that session's client only, if it is subscribed."""
        uri = namespaced_uri(downstream.config.namespace, str(params.uri))
        if owner is not None:
            principal = self._clients.get(uri, {}).get(owner)
            if principal is not None and self._hub.access.may_read(principal, downstream.name):
                await owner.notify("notifications/resources/updated", {**_body(params), "uri": uri})
            return
        if not self._in_use(uri):
            await self._release_if_unused(uri)  # every subscriber's connection ended
            return
        body = {**_body(params), "uri": uri}
        for connection, principal in list(self._clients.get(uri, {}).items()):
            if self._hub.access.may_read(principal, downstream.name):
                await connection.notify("notifications/resources/updated", body)  # best effort: never raises
        if self._listeners.get(uri):
            for bus in self._buses:
                await bus.publish(ResourceUpdated(uri=uri))


def _body(params: types.ResourceUpdatedNotificationParams) -> dict[str, Any]:
    body = params.model_dump(by_alias=True, mode="json", exclude_none=True)
    meta = body.get("_meta")
    if isinstance(meta, dict):  # a listen stream's subscription id is the downstream's, not the client's
        meta.pop(SUBSCRIPTION_ID_META_KEY, None)
        if not meta:
            body.pop("_meta")
    return body


def _per_client(downstream: Downstream) -> bool:
    """Whether a client's subscriptions to this server are held on its own session: a `per_client`
    handshake-era server (a 2026-07-28 one has no sessions: its one listen stream serves everyone)."""
    return downstream.pool is not None and not _modern(downstream.client())
