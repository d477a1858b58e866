"""Newline-delimited JSON-RPC over pipes, read in asyncio protocol callbacks.

Both of the hub's stdio hops — the client on the hub's own stdin, each stdio child on its stdout —
are read with a `LineReader`: each complete line is handed to a callback the moment its bytes
arrive, in the loop turn that read them. A callback can act on a line there and then (the
`tools/call` fast path answers a call, or completes a waiting one) or queue it, in order, in a
`LineQueue` for a task that needs to await (the SDK's session); `read_lines` sets both up. Stream wrappers and a reader task
per pipe cost a loop turn and a cancel scope per line: a measurable share of a relayed call.

`connect_line_writer` opens the writing end with asyncio's own flow control (`write` + `drain`);
`write_now` writes from a callback, which cannot wait, while the pipe keeps up.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import IO, Any

import orjson

MAX_LINE_BYTES = 64 * 1024 * 1024

Send = Callable[[bytes], Awaitable[None]]
"""Writes one complete line, waiting while the pipe is full."""
WriteNow = Callable[[bytes], bool]
"""Writes one complete line at once if the pipe keeps up, and says whether it did (`write_now`)."""


class LineReader(asyncio.Protocol):
    """Splits what arrives on a pipe into lines (without the newline) for `on_line`; calls
    `on_end(problem)` once when the pipe closes (`problem` is None for a clean end of file, else
    what went wrong). A line over `max_line` bytes ends the reading: nothing after it can be framed."""

    def __init__(self, on_line: Callable[[bytes], None], on_end: Callable[[str | None], None],
                 max_line: int = MAX_LINE_BYTES) -> None:
        self._on_line = on_line
        self._on_end = on_end
        self._max_line = max_line
        self._buffer = bytearray()
        self._ended = False
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a read transport (uvloop's are not subclasses)

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        buffer = self._buffer
        if not buffer and data.endswith(b"\n") and data.count(b"\n") == 1:
            self._on_line(data[:-1])  # the common case: exactly one whole line per read
            return
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end])
            start = end + 1
            self._on_line(line)
            if self._ended:
                return
        del buffer[:start]
        if len(buffer) > self._max_line:
            self._end(f"a line longer than {self._max_line} bytes")
            assert self.transport is not None
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self._buffer and not self._ended:
            line, self._buffer = bytes(self._buffer), bytearray()
            self._on_line(line)  # a last line without its newline is still a line
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(None if exc is None else f"{type(exc).__name__}: {exc}")

    def _end(self, problem: str | None) -> None:
        if not self._ended:
            self._ended = True
            self._buffer.clear()
            self._on_end(problem)


class LineQueue:
    """Lines waiting, in order, for a task to take them (`None` marks the end). Reading from the
    pipe pauses while `high` lines wait, so a slow consumer holds the writer back, not our memory."""

    def __init__(self, high: int = 256) -> None:
        self._lines: deque[bytes | None] = deque()
        self._ready = asyncio.Event()
        self._high = high
        self._paused = False
        self.reader: LineReader | None = None

    def __bool__(self) -> bool:
        return bool(self._lines)

    def put(self, line: bytes | None) -> None:
        self._lines.append(line)
        self._ready.set()
        if len(self._lines) >= self._high and not self._paused:
            transport = self._transport()
            if transport is not None:
                self._paused = True
                transport.pause_reading()

    async def get(self) -> bytes | None:
        while not self._lines:
            self._ready.clear()
            await self._ready.wait()
        line = self._lines.popleft()
        if self._paused and len(self._lines) <= self._high // 2:
            self._paused = False
            transport = self._transport()
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
        return line

    def _transport(self) -> asyncio.ReadTransport | None:
        return self.reader.transport if self.reader is not None else None

    def close(self) -> None:
        """Stop reading the pipe."""
        transport = self._transport()
        if transport is not None:
            transport.close()


async def read_lines(pipe: IO[bytes], queue: LineQueue, take: Callable[[bytes], bool],
                     on_problem: Callable[[str], None]) -> None:
    """Read `pipe` (a pipe, socket or character device) line by line: each line goes to `take` as it
    arrives; those it does not take wait in `queue`, which ends with None. How reading ended, unless
    at a clean end of file, goes to `on_problem`."""

    def on_line(line: bytes) -> None:
        if not take(line):
            queue.put(line)

    def on_end(problem: str | None) -> None:
        if problem is not None:
            on_problem(problem)
        queue.put(None)

    queue.reader = LineReader(on_line, on_end)
    await asyncio.get_running_loop().connect_read_pipe(lambda: queue.reader, pipe)  # type: ignore[return-value, arg-type]


async def connect_line_writer(pipe: IO[bytes]) -> asyncio.StreamWriter:
    """A `StreamWriter` on `pipe`: `write` is a non-blocking write, `drain` waits only when the
    pipe is full."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    return asyncio.StreamWriter(transport, protocol, None, loop)


WRITE_NOW_LIMIT = 64 * 1024
"""`write_now` refuses while this many bytes already wait for the pipe (asyncio's own high-water mark)."""


def write_now(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write `data` without waiting if the pipe is not backed up; say whether it was written. A
    caller that cannot wait keeps to flow control this way: once the reader falls behind, it gets
    False and takes the path that awaits `drain`."""
    if writer.is_closing() or writer.transport.get_write_buffer_size() >= WRITE_NOW_LIMIT:
        return False
    writer.write(data)
    return True


_LINE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_WIDE_NUMBER = re.compile(rb"[0-9]{19}")
"""19 digits in a row: possibly an integer beyond 64 bits, which orjson would read as a float."""
_DIGITS = b"0123456789"
_NOT_READ = object()


def _may_hold_wide_number(line: bytes) -> bool:
    """Whether `line` may hold 19 digits in a row. Most lines have fewer than 19 digits in all,
    which deleting them shows in a quarter of a microsecond; only the others pay for the regex
    (about 2 µs on a typical answer, more than orjson takes to parse it)."""
    return len(line) - len(line.translate(None, _DIGITS)) >= 19 and _WIDE_NUMBER.search(line) is not None


def json_line(message: Any) -> bytes:
    """`message` as one compact JSON-RPC line (UTF-8, newline-terminated). orjson writes it over
    ten times faster than `json`; what orjson refuses (an integer beyond 64 bits, a lone
    surrogate) goes through `json` as before."""
    try:
        return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError included
        return _LINE_ENCODER.encode(message).encode() + b"\n"


def json_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object on `line`, or None if it is not one. Read by orjson (about three times
    faster), unless the line holds what orjson reads differently from `json` (an integer beyond 64
    bits, which it turns into a float) or refuses (`NaN`, a lone surrogate): then by `json`, so
    every line means what it did."""
    message: Any = _NOT_READ
    if not _may_hold_wide_number(line):
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    if message is _NOT_READ:
        try:
            message = json.loads(line.decode())  # JSON-RPC on stdio is UTF-8; a str skips json's encoding sniffing
        except ValueError:  # UnicodeDecodeError included
            return None
    return message if isinstance(message, dict) else None


def pipe_file(fd: int, mode: str) -> IO[bytes]:
    """An unbuffered binary file object owning `fd`, for `connect_read_pipe` / `connect_write_pipe`."""
    return os.fdopen(fd, mode, buffering=0)
