"""A stdio child the CLI spawned before the hub's imports (`hub.prestart`), as `stdio_child` uses
a process: pid, a polled returncode, stderr as an anyio byte stream; its stdin and stdout are the
hub's own pipe ends, exactly as for a child `stdio_child` spawns itself."""

from __future__ import annotations

import asyncio

import anyio
import anyio.abc

from hub.prestart import PreStarted


class _PipeReceiveStream(anyio.abc.ByteReceiveStream):
    """The read end of a pipe, read by an asyncio protocol on the running loop."""

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.ReadTransport) -> None:
        self._reader = reader
        self._transport = transport

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._reader.read(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return data

    async def aclose(self) -> None:
        self._transport.close()


class AdoptedProcess:
    """What `stdio_child` and `stop_process` need of a process, for a pre-started child."""

    stdout = None

    def __init__(self, child: PreStarted, stderr: anyio.abc.ByteReceiveStream) -> None:
        self._popen = child.process
        self.pid = child.process.pid
        self.stderr = stderr

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()


async def adopt(child: PreStarted) -> AdoptedProcess:
    """Read the child's stderr on this loop; its exit status comes from polling."""
    assert child.process.stderr is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), child.process.stderr)
    return AdoptedProcess(child, _PipeReceiveStream(reader, transport))
