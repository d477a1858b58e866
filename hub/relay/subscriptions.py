"""Resource subscriptions through the hub: `resources/subscribe` / `unsubscribe` per client, and
`notifications/resources/updated` relayed back only to the clients subscribed to that URI.

Rules (docs/domains.md, "Protocol relay"):
- A client subscribes to the URI it sees (`mcphub://<namespace>/<uri>`, or the bare URI for an
  empty namespace). The hub resolves it as `resources/read` does: a URI of no server, or of a
  server the client may not read, is -32002 "Resource not found" — subscribing never reveals
  more than reading. A server that did not advertise `resources.subscribe` is -32602 naming it.
- The downstream session is shared, so the hub subscribes it once per resource (on the first
  client) and unsubscribes it when the last client leaves (or its connection ends, found at the
  next update). A downstream that reconnected is a new session: the hub subscribes it again on
  the next client subscribe, and `resubscribe` renews every live subscription after a reconnect.
- An update is rewritten to the exposed URI and sent to each subscribed client that may still
  read the server (scopes are checked again at delivery), on its standalone channel, best effort.
- Handshake era only: a 2026-07-28 client subscribes through `subscriptions/listen`, which the
  hub does not yet turn into downstream subscriptions (docs/protocol.md, "Not yet").
- `resources.subscribe` is advertised while any server supports it, or while any is still
  connecting (its support is not known yet, and an initialize never waits for servers).
"""

from __future__ import annotations

import logging
import warnings
import weakref
from typing import TYPE_CHECKING

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.catalog.naming import namespaced_uri

if TYPE_CHECKING:
    from hub.downstream.connection import Downstream
    from hub.hub import Hub

logger = logging.getLogger("hub.relay.subscriptions")

RESOURCE_NOT_FOUND = -32002
DOWNSTREAM_TIMEOUT_S = 10.0

# The hub relays handshake-era subscriptions on purpose: no warning per subscribe.
warnings.filterwarnings("ignore", message="resources/(un)?subscribe", category=MCPDeprecationWarning)


def supports_subscribe(downstream: Downstream) -> bool:
    """Whether a connected handshake-era server advertised `resources.subscribe`."""
    try:
        client = downstream.client()
    except Exception:  # noqa: BLE001 — down: no support now
        return False
    caps = client.server_capabilities.resources
    return bool(caps and caps.subscribe) and client.protocol_version not in MODERN_PROTOCOL_VERSIONS


class ResourceSubscriptions:
    """Per exposed URI: the client connections subscribed (held weakly) and the downstream session
    it was subscribed on."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._clients: dict[str, weakref.WeakKeyDictionary[Connection, Principal]] = {}
        self._downstream: dict[str, tuple[str, str, int]] = {}
        """Exposed URI -> (server, original URI, id of the downstream session subscribed)."""

    def advertised(self) -> bool:
        """The `resources.subscribe` the hub advertises (see the module's rules)."""
        return any(d.state == "starting" or supports_subscribe(d) for d in self._hub.downstreams.values())

    def _resolve(self, uri: str, principal: Principal) -> tuple[str, str]:
        target = self._hub.catalog.resolve_uri(uri)
        if target is None or not self._hub.access.may_read(principal, target[0]):
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}")
        return target

    async def subscribe(self, connection: Connection, uri: str, principal: Principal) -> None:
        """A client's `resources/subscribe`: remember it, and subscribe the server if not yet."""
        server, original = self._resolve(uri, principal)
        downstream = self._hub.downstreams[server]
        if not supports_subscribe(downstream):
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"server {server!r} does not support resource subscriptions (or is down); "
                                   f"read {uri} again instead")
        await self._ensure(downstream, uri, original)
        self._clients.setdefault(uri, weakref.WeakKeyDictionary())[connection] = principal

    async def unsubscribe(self, connection: Connection, uri: str, principal: Principal) -> None:
        """A client's `resources/unsubscribe`: forget it; the last one out unsubscribes the server.
        Unsubscribing from something not subscribed is a no-op, as it is for servers."""
        self._resolve(uri, principal)
        clients = self._clients.get(uri)
        if clients is not None:
            clients.pop(connection, None)
        await self._release_if_unused(uri)

    async def _ensure(self, downstream: Downstream, uri: str, original: str) -> None:
        client = downstream.client()
        session = id(client.session)
        if self._downstream.get(uri) == (downstream.name, original, session):
            return
        with anyio.fail_after(DOWNSTREAM_TIMEOUT_S):
            await client.session.subscribe_resource(original)
        self._downstream[uri] = (downstream.name, original, session)

    async def _release_if_unused(self, uri: str) -> None:
        if self._clients.get(uri):
            return
        self._clients.pop(uri, None)
        sent = self._downstream.pop(uri, None)
        if sent is None:
            return
        server, original, session = sent
        try:
            client = self._hub.downstreams[server].client()
            if id(client.session) == session:
                with anyio.fail_after(DOWNSTREAM_TIMEOUT_S):
                    await client.session.unsubscribe_resource(original)
        except Exception as exc:  # noqa: BLE001 — best effort: a reconnected session has no subscription anyway
            logger.debug("resources/unsubscribe %s on %s not sent: %s", original, server, type(exc).__name__)

    async def resubscribe(self, downstream: Downstream) -> None:
        """After a server (re)connected: subscribe its new session to every URI clients still hold."""
        for uri, (server, original, _session) in list(self._downstream.items()):
            if server != downstream.name or not self._clients.get(uri):
                continue
            try:
                await self._ensure(downstream, uri, original)
            except Exception as exc:  # noqa: BLE001 — logged; the client's next subscribe retries
                downstream.log.warning("could not renew the subscription to %s: %s", original, type(exc).__name__)

    async def relay(self, downstream: Downstream, params: types.ResourceUpdatedNotificationParams) -> None:
        """Send one server's `notifications/resources/updated` to the clients subscribed to it."""
        uri = namespaced_uri(downstream.config.namespace, str(params.uri))
        clients = self._clients.get(uri)
        if not clients:
            await self._release_if_unused(uri)  # every subscriber's connection ended
            return
        body = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        body["uri"] = uri
        for connection, principal in list(clients.items()):
            if self._hub.access.may_read(principal, downstream.name):
                await connection.notify("notifications/resources/updated", body)  # best effort: never raises
