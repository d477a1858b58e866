"""The hub server's side of the relay: `logging/setLevel`, `notifications/roots/list_changed`,
`resources/subscribe` / `unsubscribe`, and the capabilities and instructions each client is given.

Handlers are registered with the SDK's public `add_request_handler` / `add_notification_handler`
(the constructor's keyword arguments warn that logging and subscribe are deprecated in
2026-07-28; they are still what every handshake-era client uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.runner import serve_dual_era_loop
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.hub import Hub
from hub.relay.instructions import hub_instructions


class RelayFace(Server[Any]):
    """What a client learns when it connects, worked out when it connects: `instructions` merged
    from the servers connected by then (`hub.relay.instructions`) and `resources.subscribe` while
    any server supports it (`hub.relay.subscriptions`). `run` therefore passes no prebuilt
    initialization options: the SDK runner builds them at each `initialize`."""

    relay_hub: Hub | None = None
    relay_caller: Callable[[], Principal] | None = None
    _own_instructions: str | None = None

    @property  # type: ignore[override]
    def instructions(self) -> str | None:
        if self.relay_hub is None or self.relay_caller is None:
            return self._own_instructions
        return hub_instructions(self.relay_hub, self.relay_caller(), self._own_instructions or "")

    @instructions.setter
    def instructions(self, value: str | None) -> None:
        self._own_instructions = value

    def get_capabilities(
        self,
        notification_options: Any = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        caps = super().get_capabilities(notification_options, experimental_capabilities, extensions,
                                        protocol_version=protocol_version)
        if caps.resources is None or self.relay_hub is None or protocol_version in MODERN_PROTOCOL_VERSIONS:
            return caps
        subscribe = self.relay_hub.subscriptions.advertised()
        return caps.model_copy(update={"resources": caps.resources.model_copy(update={"subscribe": subscribe})})

    async def run(self, read_stream: Any, write_stream: Any, initialization_options: Any = None,
                  raise_exceptions: bool = False) -> None:
        """`Server.run`, with the initialization options built at `initialize` (see the class)."""
        async with self.lifespan(self) as lifespan_context:
            await serve_dual_era_loop(self, read_stream, write_stream, lifespan_state=lifespan_context,
                                      init_options=None, raise_exceptions=raise_exceptions)


def install_relay_handlers(server: Server[Any], hub: Hub, caller: Callable[[], Principal]) -> None:
    """Answer `logging/setLevel` (so `logging` is advertised), `resources/subscribe` and
    `unsubscribe`, and pass roots changes on."""
    if isinstance(server, RelayFace):
        server.relay_hub, server.relay_caller = hub, caller

    def connection_of(ctx: ServerRequestContext[Any]) -> Any:
        return getattr(ctx.session, "_connection", None)  # no public accessor (see hub.server.ClientRegistry)

    async def set_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
        connection = connection_of(ctx)
        if connection is not None:
            await hub.log_relay.set_level(connection, params.level, caller())
        return types.EmptyResult()

    async def subscribe(ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
        connection = connection_of(ctx)
        if connection is not None:
            await hub.subscriptions.subscribe(connection, str(params.uri), caller())
        return types.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        connection = connection_of(ctx)
        if connection is not None:
            await hub.subscriptions.unsubscribe(connection, str(params.uri), caller())
        return types.EmptyResult()

    async def roots_changed(ctx: ServerRequestContext[Any], params: types.NotificationParams) -> None:
        await hub.request_relay.roots_changed(caller())

    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    server.add_notification_handler("notifications/roots/list_changed", types.NotificationParams, roots_changed)
