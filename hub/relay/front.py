"""The hub server's side of the relay: `logging/setLevel` and `notifications/roots/list_changed`.

Registered with the SDK's public `add_request_handler` / `add_notification_handler` (the
constructor's keyword arguments warn that both features are deprecated in 2026-07-28; they are
still what every handshake-era client uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext

from hub.auth.principal import Principal
from hub.hub import Hub


def install_relay_handlers(server: Server[Any], hub: Hub, caller: Callable[[], Principal]) -> None:
    """Answer `logging/setLevel` (so `logging` is advertised) and pass roots changes on."""

    async def set_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
        connection = getattr(ctx.session, "_connection", None)  # no public accessor (see hub.server.ClientRegistry)
        if connection is not None:
            await hub.log_relay.set_level(connection, params.level, caller())
        return types.EmptyResult()

    async def roots_changed(ctx: ServerRequestContext[Any], params: types.NotificationParams) -> None:
        await hub.request_relay.roots_changed(caller())

    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    server.add_notification_handler("notifications/roots/list_changed", types.NotificationParams, roots_changed)
