"""Reading a stdin the event loop cannot watch — a terminal, a regular file, /dev/null — for the same
line protocol as a pipe (`hub.frontends.stdio.line_pipes.LineReader`).

The loop's pipe transport needs a non-blocking descriptor: a file is always "ready", and a terminal
shares its open file with the shell, which must never be left non-blocking. So a daemon thread reads
it, blocking, and hands each chunk to the loop in order. Being a daemon, it never holds up a stop:
the SDK's own reader, used before for such a stdin, runs `read` in a worker thread the stop has to
wait for, so Ctrl-C in a terminal took the 10 s watchdog (`hub.signals`). With this, the front is
the same whatever stdin is: the malformed-line guard and the `tools/call` fast path included.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

CHUNK_BYTES = 256 * 1024


class ThreadReadTransport(asyncio.ReadTransport):
    """A read transport whose reading happens in a daemon thread (see the module)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._loop, self._fd, self._protocol = loop, fd, protocol
        self._paused = False
        self._closing = False
        self._held: list[bytes | None] = []  # what arrived while paused: delivered, in order, on resume
        self._may_read = threading.Event()
        self._may_read.set()
        self._protocol.connection_made(self)
        threading.Thread(target=self._read, name="stdin-reader", daemon=True).start()

    def _read(self) -> None:
        ended: BaseException | None = None
        try:
            while True:
                self._may_read.wait()
                if self._closing:
                    return
                data = os.read(self._fd, CHUNK_BYTES)
                if not data:
                    break
                self._loop.call_soon_threadsafe(self._arrived, data)
        except OSError as exc:
            ended = exc
        try:
            self._loop.call_soon_threadsafe(self._end, ended)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            pass

    def _arrived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._paused:
            self._held.append(data)
        else:
            self._protocol.data_received(data)

    def _end(self, exc: BaseException | None) -> None:
        if self._paused:
            self._held.append(None)  # the end comes after what is held
            return
        if not self._closing:
            self._closing = True
            if exc is None:
                self._protocol.eof_received()
            self._protocol.connection_lost(exc if isinstance(exc, Exception) else None)

    def pause_reading(self) -> None:
        self._paused = True
        self._may_read.clear()

    def resume_reading(self) -> None:
        self._paused = False
        while self._held and not self._paused:
            data = self._held.pop(0)
            if data is None:
                self._end(None)
                return
            self._protocol.data_received(data)
        if not self._paused:
            self._may_read.set()

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._may_read.set()  # a paused reader wakes to see it is closed (a blocked `read` stays blocked: a daemon)
            self._loop.call_soon(self._protocol.connection_lost, None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def connect_read_thread(protocol_factory: Callable[[], asyncio.Protocol], fd: int) -> ThreadReadTransport:
    """Start reading `fd` in a daemon thread for the protocol `protocol_factory` makes."""
    return ThreadReadTransport(asyncio.get_running_loop(), fd, protocol_factory())
