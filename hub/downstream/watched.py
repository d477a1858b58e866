"""A client transport whose end is noticed: the legacy SSE transport's event stream.

Over legacy SSE every answer comes on the one event stream the session opened; when it ends (the
server restarted or went away) the session is gone for good — its POST endpoint names a session the
server no longer has. The SDK's client then fails each request with "Connection closed" but keeps the
session, and nothing outside it learns of the end (outside review, interop round 8: a restarted SSE
server was never reached again until two health checks failed, and the breaker closed it to every
client meanwhile). `watched` wraps the transport's receive stream and calls `on_end(why)` once, when
the stream ends or yields a transport error, so the owner can drop the session and open a new one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from hub.errors import describe_failure


@asynccontextmanager
async def watched(transport: AbstractAsyncContextManager[Any], on_end: Callable[[str], None]) -> AsyncIterator[Any]:
    """`transport` (yielding `(read_stream, write_stream)`) with its read stream watched for its end."""
    async with transport as (read_stream, write_stream):
        yield _WatchedStream(read_stream, on_end), write_stream


class _WatchedStream:
    """The SDK's receive stream (iterated by its dispatcher), calling `on_end` once at its end.
    Everything else (`last_context`, closing) is the wrapped stream's."""

    def __init__(self, stream: Any, on_end: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_end = on_end
        self._ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def __aenter__(self) -> _WatchedStream:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._stream.__aexit__(*exc_info)

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._end("its event stream ended (the server restarted or went away)")
            raise StopAsyncIteration from None
        if isinstance(item, Exception):  # the SDK's SSE reader sends its failure, then ends the stream
            self._end(f"its event stream failed: {describe_failure(item)}")
        return item

    async def receive(self) -> Any:
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None

    def _end(self, why: str) -> None:
        if not self._ended:
            self._ended = True
            self._on_end(why)
