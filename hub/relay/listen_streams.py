"""The hub's `subscriptions/listen` handler (2026-07-28 listen streams; `hub.relay.subscriptions` keeps
what they hold downstream): the SDK's, with the stream's resource URIs held downstream while it is open,
at most `hub.http.max_sessions_per_principal` streams per caller, and the stream ended once the
credential that opened it is revoked or expires (`hub.auth.credential_watch`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.subscriptions import ListenHandler, SubscriptionBus
from mcp.shared.exceptions import MCPError

from hub.auth.principal import Principal, identity
from hub.errors import HubRefusal

if TYPE_CHECKING:
    from hub.relay.subscriptions import ResourceSubscriptions


class HubListenHandler(ListenHandler):
    """The SDK's listen handler, with the stream's resource URIs held downstream while it is open
    and the acknowledgment naming only those (see the module's rules)."""

    def __init__(self, bus: SubscriptionBus, subscriptions: ResourceSubscriptions, caller: Callable[[], Principal], *,
                 per_principal: int, max_subscriptions: int) -> None:
        super().__init__(bus, max_subscriptions=max_subscriptions)
        self._subscriptions, self._caller, self._per_principal = subscriptions, caller, per_principal

    async def __call__(self, ctx: Any, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        principal = self._caller()
        who, open_streams = identity(principal), self._subscriptions.streams_of
        if open_streams[who] >= self._per_principal:  # one caller must not hold every stream (review isolation16)
            refusal = HubRefusal("rate_limited", f"this caller already holds {open_streams[who]} listen streams, "
                                 "the most one caller may hold (hub.http.max_sessions_per_principal); close one "
                                 "(one stream can carry every notification kind and resource URI) and listen again",
                                 retry_after_s=1.0)
            raise MCPError(code=types.INTERNAL_ERROR, message=refusal.body.message,
                           data=refusal.body.model_dump(exclude_none=True))
        open_streams[who] += 1
        try:
            wanted = params.notifications.resource_subscriptions or []
            held = await self._subscriptions.hold_for_stream(wanted, principal) if wanted else []
            honored = params.notifications.model_copy(update={"resource_subscriptions": held or None})
            watch = self._subscriptions.watch
            try:
                with anyio.CancelScope() as stream:
                    release = watch.hold(get_access_token(), stream.cancel, "listen stream") if watch is not None else None
                    try:
                        return await super().__call__(ctx, params.model_copy(update={"notifications": honored}))
                    finally:
                        if release is not None:
                            release()
                raise MCPError(code=types.INVALID_REQUEST, message="this listen stream ended: the credential that "
                               "opened it was revoked or expired; listen again with a valid one")
            finally:
                if held:
                    with anyio.CancelScope(shield=True):
                        await self._subscriptions.release_stream(held)
        finally:
            open_streams[who] -= 1
            if open_streams[who] <= 0:
                del open_streams[who]
