"""A client transport whose end is noticed: the legacy SSE transport's event stream.

Over legacy SSE every answer comes on the one event stream the session opened; when it ends (the
server restarted or went away) the session is gone for good — its POST endpoint names a session the
server no longer has. The SDK's client then fails each request with "Connection closed" but keeps the
session, and nothing outside it learns of the end (outside review, interop round 8: a restarted SSE
server was never reached again until two health checks failed, and the breaker closed it to every
client meanwhile). `watched` wraps the transport's receive stream and calls `on_end(why)` once, when
the stream ends or yields a transport error, so the owner can drop the session and open a new one.

A POST the server refuses (400, 413, 5xx: any error status but 404, "no such session") ended the SDK's
writer for good while its event stream stayed open: the refused request waited out its deadline and
every later request of the session failed "Connection closed" (outside review engines16 #1: one bad
call cut a shared SSE session off for everyone, and the breaker opened). Now the HTTP transport
answers such a POST 202 to the SDK, so the session goes on, and hands the JSON-RPC error naming the
status (`hub.downstream.http_status`) to `Refusals`, which delivers it on the session's read side as
the server's answer to that request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter

from hub.errors import describe_failure


class Refusals:
    """Made-up answers to requests whose POST the server refused, for the session's read side."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[SessionMessage](REFUSALS_BUFFER)

    def put(self, body: bytes) -> None:
        """A JSON-RPC error answering one refused request (bytes as `status_answer` made them)."""
        try:
            self._send.send_nowait(SessionMessage(jsonrpc_message_adapter.validate_json(body)))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError, ValueError):
            pass  # the session is over, or thousands are queued: the request keeps its deadline

    async def _forward(self, into: Any) -> None:
        async with self._receive, into:
            async for message in self._receive:
                await into.send((message, None))

    def close(self) -> None:
        self._send.close()


REFUSALS_BUFFER = 1024


@asynccontextmanager
async def watched(transport: AbstractAsyncContextManager[Any], on_end: Callable[[str], None],
                  refusals: Refusals | None = None) -> AsyncIterator[Any]:
    """`transport` (yielding `(read_stream, write_stream)`) with its read stream watched for its end,
    and `refusals` (fed by the HTTP transport) merged into it."""
    refusals = refusals or Refusals()
    async with transport as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[tuple[Any, Any]](0)
        async with anyio.create_task_group() as group:
            group.start_soon(_forward, read_stream, send, refusals)
            group.start_soon(refusals._forward, send.clone())  # noqa: SLF001 — its own feed
            try:
                yield _WatchedStream(_Merged(receive), on_end), write_stream
            finally:
                group.cancel_scope.cancel()


async def _forward(read_stream: Any, into: Any, refusals: Refusals) -> None:
    """The SDK's messages, each with the context its sender had (`last_context`), until the stream ends."""
    try:
        async with into:
            while True:
                try:
                    item = await read_stream.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    return
                await into.send((item, getattr(read_stream, "last_context", None)))
    finally:
        refusals.close()  # its feed ends too, so the merged stream ends


class _Merged:
    """The merged receive stream, with the sender's context of the last item (as the SDK's own has)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.last_context: Any = None

    async def receive(self) -> Any:
        item, self.last_context = await self._stream.receive()
        return item

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _Merged:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


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
