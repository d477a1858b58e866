"""Which protocol era the hub speaks to a downstream server (`protocol` in its config).

`auto` means: an out-of-process server (stdio, Streamable HTTP, SSE) gets the 2025-11-25
initialize handshake first. A server that does both eras does more on a handshake session: it can
send sampling, elicitation and roots requests and log messages at any time, and keep per-session
state, all of which a 2026-07-28 connection has no back-channel for (an SDK server's
`ctx.session.create_message` fails there with "no back-channel"). The hub relays all of it to
clients of either era (to a 2026-07-28 client as input-required rounds), so the handshake loses
nothing. A server that refuses the handshake as a 2026-07-28-only server does (-32022, or
-32601 for `initialize`) is connected again at once with the SDK's `auto` probe. An in-process
domain of the hub keeps the probe: it sends no server→client requests, and its 2026-07-28
per-request path is the cheaper one. `legacy` pins the handshake. `2026-07-28` pins the modern
era through the probe too (the SDK's own pin adopts a made-up `server/discover` answer with no
capabilities, so the hub would list nothing), and a server that then answers only the handshake
is refused with a clear error.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.config import ServerConfig


class HandshakeRefused(Exception):
    """The server refused the 2025-11-25 handshake `auto` tried first: connect again with the probe."""


class Era:
    """The `mode` this server's SDK clients are built with, and the fallback after a refusal."""

    def __init__(self, config: ServerConfig) -> None:
        self.handshake_first = config.protocol == "auto" and config.transport != "inprocess"
        self.require_modern = config.protocol in MODERN_PROTOCOL_VERSIONS
        self.mode: str = "legacy" if self.handshake_first or config.protocol == "legacy" else "auto"

    @asynccontextmanager
    async def handshake(self, client: Client) -> AsyncIterator[Client]:
        """Enter `client`; a handshake `auto` tried first and the server refused switches this
        server to the probe for every later connection and raises `HandshakeRefused`."""
        try:
            entered = await client.__aenter__()
        except Exception as exc:  # the SDK may wrap the refusal in (nested) exception groups
            refusal = _refusal(exc)
            if self.handshake_first and self.mode == "legacy" and refusal is not None:
                self.mode = "auto"
                raise HandshakeRefused(f"the server refused the 2025-11-25 handshake ({refusal.code})") from exc
            raise
        if self.require_modern and entered.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            await client.__aexit__(None, None, None)
            raise ConnectionError(f"the server answered with protocol {entered.protocol_version}, not 2026-07-28 as its "
                                  "`protocol` setting requires; set `protocol` to `auto` or `legacy`")
        try:
            yield entered
        except BaseException as exc:
            if not await client.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await client.__aexit__(None, None, None)


def _refusal(exc: BaseException) -> MCPError | None:
    """The -32022 / -32601 answer to `initialize` in `exc` (itself or inside exception groups)."""
    if isinstance(exc, MCPError):
        return exc if exc.code in (UNSUPPORTED_PROTOCOL_VERSION, METHOD_NOT_FOUND) else None
    for inner in getattr(exc, "exceptions", ()):
        if (found := _refusal(inner)) is not None:
            return found
    return None
