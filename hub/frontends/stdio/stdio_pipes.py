"""The hub's own stdio: the SDK's `stdio_server` reads and writes through a worker thread per line
(anyio's file wrapper), two thread hand-offs per request and reply. When stdin is a pipe or a
socket — as every MCP client spawns us — we give it line-oriented objects over non-blocking asyncio
pipes instead; a stdin that is no pipe (a terminal, a file) is read the same way through a daemon
thread (`thread_reader`), so a stop never waits for it. stdout is a non-blocking pipe too when it
is one, else (a file, /dev/null, a terminal) written at once (`BlockingLineWriter`).

Like the SDK, the protocol gets private copies of fd 0 and 1 and the real fd 1 is pointed at
stderr, so a stray `print` can never corrupt the JSON-RPC stream.

An optional interceptor sees every line first, in the callback that read it, and may answer it
itself (the hub's `tools/call` fast path, `hub.frontends.stdio.stdio_calls`); lines it does not take reach the SDK
unchanged and in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
from mcp.server.stdio import stdio_server

from mcp_types import JSONRPCError, JSONRPCResponse

from hub.pipe_size import widen_pipe
from hub.lifted import PLACEHOLDER_MARK, SPLICING, splice_held

from hub.frontends.stdio.line_errors import FrontGuard
from hub.frontends.stdio.line_pipes import (BlockingLineWriter, LineQueue, Send, WriteNow, connect_line_writer, pipe_file, read_lines,
                                            watchable, write_now)

logger = logging.getLogger("hub.server")
WRITE_GRACE_S = 5.0
"""After stdin closes, how long answers not yet written may wait for the client to read stdout;
then they are dropped, so a client that closed stdin but stopped reading never keeps the hub up."""



class LineInterceptor(Protocol):
    def take(self, line: bytes) -> bool:
        """Handle `line` here (True) or leave it to the SDK (False)."""

    async def aclose(self) -> None:
        """Stop whatever work taken lines started."""


class _Lines:
    """`async for line in stdin`: the lines the interceptor did not take, in order."""

    def __init__(self, queue: LineQueue) -> None:
        self._queue = queue

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._queue.get()
        if line is None:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Answers:
    """The SDK's write stream, telling the `FrontGuard` which requests have been answered."""

    def __init__(self, stream: Any, guard: FrontGuard) -> None:
        self._stream = stream
        self._guard = guard

    async def send(self, item: Any) -> None:
        try:
            await self._stream.send(item)
        finally:
            if isinstance(item.message, (JSONRPCResponse, JSONRPCError)):
                self._guard.answered(item.message.id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def __aenter__(self) -> _Answers:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._stream.__aexit__(*exc)


class _Writer:
    """`await stdout.write(text)` / `await stdout.flush()` over an asyncio StreamWriter."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        data = text.encode("utf-8")
        if PLACEHOLDER_MARK not in data:
            self._writer.write(data)
            return
        for piece in splice_held(data):  # a big result's skeleton (`hub.wire.sdk_result`): its held strings go in as sent
            self._writer.write(piece)

    async def flush(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError):  # the client is gone, or stopped reading (`abandon_stdout`)
            pass


@asynccontextmanager
async def pipe_stdio(interceptor: Callable[[Send, WriteNow], LineInterceptor] | None = None) -> AsyncIterator[tuple[Any, Any]]:
    """`(read_stream, write_stream)` for `Server.run` over this process's stdin and stdout, with
    `interceptor` (built from how to write a line to stdout — awaiting the pipe, or at once while
    it keeps up) seeing each line first."""
    stdin = pipe_file(os.dup(0), "rb")
    stdout = pipe_file(os.dup(1), "wb")
    widen_pipe(stdout)  # big answers cross it (`hub.pipe_size`)
    saved = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # anything printed from now on lands on stderr, not in the protocol stream
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # Asked of our copy: fd 1 points at stderr by now, and a pipe taken for a file would be written
    # blocking, holding the loop until the client had read a whole big answer.
    writer = await connect_line_writer(stdout) if watchable(stdout.fileno()) else BlockingLineWriter(stdout)
    SPLICING.set(True)  # this task's SDK server hands big results' skeletons to `_Writer`, which splices

    async def send(data: bytes | list[bytes | memoryview]) -> None:
        for piece in [data] if isinstance(data, bytes) else data:
            writer.write(piece)  # pieces of one line: written with no await between them
        await writer.drain()

    replying: set[asyncio.Task[None]] = set()

    def reply(data: bytes) -> None:
        if not write_now(writer, data):
            task = asyncio.get_running_loop().create_task(send(data))
            replying.add(task)
            task.add_done_callback(replying.discard)

    taker = interceptor(send, lambda data: write_now(writer, data)) if interceptor is not None else None
    guard: FrontGuard = getattr(taker, "guard", None) or FrontGuard(reply)
    queue = LineQueue()

    def abandon_stdout() -> None:
        if not writer.is_closing() and (left := writer.transport.get_write_buffer_size()):
            logger.warning("stdin is closed and %d bytes of answers are still unread on stdout after %.0f s: "
                           "dropped, so the hub can stop", left, WRITE_GRACE_S)
            writer.transport.abort()

    await read_lines(stdin, queue, taker.take if taker is not None else guard.take,
                     lambda problem: logger.warning("stdin: %s; closing the session", problem), guard.overlong,
                     lambda: asyncio.get_running_loop().call_later(WRITE_GRACE_S, abandon_stdout))
    try:
        async with stdio_server(_Lines(queue), _Writer(writer)) as (read_stream, write_stream):  # type: ignore[arg-type]
            yield read_stream, _Answers(write_stream, guard)
    finally:
        if taker is not None:
            with anyio.CancelScope(shield=True):
                await taker.aclose()
        queue.close()
        writer.close()
        for fd, original in zip((0, 1), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)


async def serve_stdio(server: Any, hub: Any = None) -> None:
    """Serve one client on this process's stdin/stdout until stdin closes; with `hub`, its
    `tools/call` requests take the fast path (`hub.frontends.stdio.stdio_calls`). Lives here rather than in
    `hub.frontends.http.transports` so a stdio start never imports the HTTP stack (uvicorn, Starlette)."""
    interceptor = None
    if hub is not None:
        from hub.frontends.stdio.stdio_calls import StdioToolCalls

        interceptor = lambda send, write_now: StdioToolCalls(hub, send, write_now)  # noqa: E731
    async with pipe_stdio(interceptor) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
