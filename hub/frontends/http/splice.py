"""Big results over HTTP: the long strings of a result read from a big line (`hub.lifted`) go out
as the bytes the downstream sent, in pieces that give the event loop a turn between them.

The SDK's server serialises what the hub's `tools/call` handler returns — for a request that came
through `SpliceLifted`, the small skeleton of such a result, with a placeholder for each long string
(`hub.wire.sdk_result`). This ASGI middleware finds the placeholders in the response body as it is
sent (a JSON response or an SSE event) and writes the held bytes in their place, 1 MiB a message;
a JSON response's `Content-Length` is corrected. Parsing those strings into `str` and letting
pydantic encode them again held the GIL for a second per 20 MB, stalling every other caller.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.lifted import PLACEHOLDER_MARK, SPLICE_SCOPE_KEY, splice_held

PIECE_BYTES = 1024 * 1024
"""The largest body message a spliced response is written in."""


class SpliceLifted:
    """ASGI middleware: marks each HTTP request's scope as spliced (`SPLICE_SCOPE_KEY`) and splices
    held strings into the response bodies it sends (whichever request the answer goes out on: the
    legacy SSE stream, a later leg of a 2026-07-28 call)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SPLICE_SCOPE_KEY] = True
        start: Message | None = None

        async def splicing_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if not any(name.lower() == b"content-length" for name, _ in message.get("headers", [])):
                    await send(message)  # a stream (SSE): its head goes at once, a client may wait for it
                    return
                start = message  # held until the first body part: its Content-Length may change
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            pieces = splice_held(body) if PLACEHOLDER_MARK in body else [body]
            used = len(pieces) > 1
            if start is not None:
                head, start = start, None
                await send(_with_length(head, sum(map(len, pieces))) if used else head)
            if not used:
                await send(message)
                return
            more = message.get("more_body", False)
            parts = [bytes(piece[at:at + PIECE_BYTES]) for piece in pieces for at in range(0, len(piece), PIECE_BYTES)]
            for number, part in enumerate(parts):
                await send({"type": "http.response.body", "body": part, "more_body": more or number < len(parts) - 1})

        await self.app(scope, receive, splicing_send)


def _with_length(start: Message, length: int) -> Message:
    headers = start.get("headers", [])
    if not any(name.lower() == b"content-length" for name, _ in headers):
        return start
    fixed = [(name, str(length).encode() if name.lower() == b"content-length" else value) for name, value in headers]
    return {**start, "headers": fixed}
