"""Whether and how a call can reach one downstream now (a mixin of `hub.downstream.connection.Downstream`):
its connected client, when it is worth trying again, and the fast paths it offers (`DirectTools` for an
in-process server, the stdio child's `JsonChannel`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from mcp import Client

from hub.config import ServerConfig
from hub.downstream.direct_tools import DirectTools
from hub.downstream.json_channel import JsonChannel


class DownstreamUnavailable(Exception):
    """The server is not connected (failed to start, exited, or stopped)."""


class Readiness:
    """`client()`, `ready_client()`, `ready_now()` and the fast paths (state lives on `Downstream`)."""

    config: ServerConfig
    name: str
    state: str
    error: str | None
    reconnect_at: float
    connect_timeout_s: float
    first_attempt: anyio.Event
    _client: Client | None
    _json: JsonChannel | None
    _direct: DirectTools | None
    if TYPE_CHECKING:
        _lost: anyio.Event

    def client(self) -> Client:
        if self._client is None or self.state != "ready" or self._lost.is_set():
            reason = self.error or self.state
            raise DownstreamUnavailable(f"server {self.name!r} is down ({reason})")
        return self._client

    def retry_after_s(self) -> float:
        """Seconds until the next reconnect attempt (at least 0.1): the `retry_after_s` of a refusal."""
        return round(max(0.1, self.reconnect_at - anyio.current_time()), 1)

    async def wait_started(self) -> None:
        """Wait (up to the connect timeout) while the server is still starting: the hub may list its
        tools from a remembered listing (`hub.catalog.listing_cache`) before it is up."""
        if self.state == "starting":
            with anyio.move_on_after(self.connect_timeout_s):
                await self.first_attempt.wait()

    async def ready_client(self) -> Client:
        """`client()`, after `wait_started`."""
        await self.wait_started()
        return self.client()

    @property
    def direct(self) -> DirectTools | None:
        """The tools of a connected in-process `MCPServer` that may be awaited directly
        (`hub.downstream.direct_tools`), or None."""
        return self._direct if self._client is not None else None

    @property
    def relays_json(self) -> bool:
        """Whether a call's result may be relayed as JSON (`hub.downstream.forwarders`): a stdio child (through the `JsonChannel`, once
        connected) or an in-process server (through the SDK's direct dispatcher, which passes the
        result dict as the server built it). Over HTTP the SDK's client also derives per-request
        headers (`Mcp-Name`, `Mcp-Param-*`) from the listing, so those calls keep the parsed path."""
        return self.config.transport == "inprocess" or (self._json is not None and self._json.open)

    @property
    def json_channel(self) -> JsonChannel | None:
        """The stdio child's `JsonChannel` (the forwarder's JSON requests), None for other transports."""
        return self._json

    def ready_now(self) -> Client | None:
        """The connected client if a call can be sent this instant (ready, not lost), else None."""
        if self._json is None or self.state != "ready" or self._client is None or self._lost.is_set():
            return None
        return self._client


def operator_must_fix(exc: BaseException) -> bool:
    """Whether a failed connection attempt needs the hub's operator, not time: the server refused the
    credentials configured for it (HTTP 401/403), or the child cannot be spawned (command or working
    directory missing, not executable). A caller told to retry such a refusal only loops (outside review
    newuser19 #6: "calling again will not help" came with `retryable: true`)."""
    from mcp.shared.exceptions import MCPError

    from hub.downstream.http_status import HttpStatus
    from hub.prestart import ChildStartError

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, (ChildStartError, FileNotFoundError, NotADirectoryError, PermissionError, ImportError)):
        return True  # an in-process server's module that cannot be imported too (`Downstream.run` stops trying)
    if isinstance(exc, MCPError) and (status := HttpStatus.of(exc.error.data)) is not None:
        return status.status in (401, 403) and status.problem is None
    response = getattr(exc, "response", None)  # httpx's HTTPStatusError (the legacy SSE transport's GET)
    return getattr(response, "status_code", None) in (401, 403)
