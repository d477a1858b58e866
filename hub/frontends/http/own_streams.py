"""A Streamable HTTP client's own stream — its GET event stream — as the relay needs to see it.

A server's request asked outside any call (`roots/list`, `hub.relay.roots`) goes on the client's own
stream; the SDK drops what is written to a session's standalone stream while no GET stream is open, so
the relay asks a session only while its GET stream is held (`stream_probe`), and hears when one opens
(`StreamOpenings`) to tell the servers left waiting meanwhile.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from mcp.server.streamable_http import GET_STREAM_KEY, MCP_SESSION_ID_HEADER
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SESSION = MCP_SESSION_ID_HEADER.lower().encode()


def stream_probe(manager: Any) -> Callable[[str], bool | None]:
    """Whether session `id`'s GET stream is open now in `manager` (None: not a session of `manager`'s)."""
    held = weakref.ref(manager)

    def probe(session_id: str) -> bool | None:
        owner = held()
        transport = owner._server_instances.get(session_id) if owner is not None else None  # noqa: SLF001
        if transport is None:
            return None
        return GET_STREAM_KEY in transport._request_streams  # noqa: SLF001 — where the SDK routes it, or drops it

    return probe


class StreamOpenings:
    """In front of the SDK's app: a session's GET answered as an event stream calls `opened(session id)`."""

    def __init__(self, app: ASGIApp, opened: Callable[[str], None]) -> None:
        self.app = app
        self.opened = opened

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" and scope.get("method") == "GET" else {}
        session_id = headers.get(_SESSION, b"").decode("latin-1")
        if not session_id or headers.get(b"last-event-id", b"").startswith(b"r"):  # `r…`: a call's stream resumed
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                self.opened(session_id)
            await send(message)

        await self.app(scope, receive, watched)
