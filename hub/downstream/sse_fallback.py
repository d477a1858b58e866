"""A `streamable_http` server that turns out to be a legacy HTTP+SSE one (protocol 2024-11-05).

VS Code and Cursor write `{"type": "http", "url": …}` for both kinds, and VS Code falls back to SSE
itself, as the spec's backwards-compatibility section says a client should: POST the `initialize`; on a
4xx, GET the URL expecting an event stream whose first event is `endpoint`. The hub does the same
(outside review interop26 #3: such an entry pasted from VS Code never connected, `check` said OK and
every call answered "down (Not Found)", retryable, for ever). When the GET answers an event stream
with an `endpoint` event, the server is spoken to over SSE from then on (logged, with the setting that
skips the probe); when it does not, the failure names the URL and both fixes.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from mcp.shared.exceptions import MCPError

from hub.downstream.http_status import HttpStatus

PROBE_S = 5.0
"""How long the GET may take to show its first event."""
_NOT_THERE = ("not found", "method not allowed")


def refused_initialize(exc: BaseException) -> bool:
    """Whether a Streamable HTTP handshake failed as a server that takes no POST there answers: the SDK's
    client reads a 404 before any session as "Not Found" (-32601); a 405 comes as the hub's HTTP status."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        refused = HttpStatus.of(exc.error.data)  # the hub's transport names the status (`hub.downstream.http_status`)
        if refused is not None:
            return refused.status in (404, 405)
        return exc.error.message.strip().lower() in _NOT_THERE or exc.error.code == -32601
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in (404, 405)
    return False


async def answers_as_legacy_sse(url: str, headers: dict[str, Any] | None) -> bool:
    """Whether a GET of `url` opens an event stream whose first event is `endpoint` (an HTTP+SSE server)."""
    try:
        with anyio.fail_after(PROBE_S):
            async with httpx.AsyncClient(timeout=PROBE_S, follow_redirects=False) as client, client.stream(
                    "GET", url, headers={**(headers or {}), "Accept": "text/event-stream"}) as response:
                if response.status_code != 200 or not response.headers.get("content-type", "").startswith("text/event-stream"):
                    return False
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        return line.partition(":")[2].strip() == "endpoint"
                    if line.startswith("data:"):
                        return False  # a first event without a type is `message`, not `endpoint`
    except (httpx.HTTPError, TimeoutError, OSError):
        return False
    return False


def not_there(url: str) -> str:
    """The failure of a `streamable_http` server that took no POST at `url` and is no SSE server either."""
    return (f"{url} refused the Streamable HTTP initialize (404 or 405) and is no legacy SSE endpoint either: check "
            "the URL (the MCP endpoint's path, often /mcp; a legacy SSE server's ends in /sse: set \"transport\": \"sse\")")
