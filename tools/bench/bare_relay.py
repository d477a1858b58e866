"""The floor for any gateway that is a process of its own: a relay that copies bytes between its
stdio and a child's stdio, parsing nothing and deciding nothing. `hub_overhead.py` runs it as a
contender, so each run shows how close to that floor the hub is.

    python bare_relay.py COMMAND [ARGS...]

Written the way the hub reads pipes (`asyncio` protocol callbacks, writes without waiting), so the
difference to the hub is the hub's own work per call: parsing, policies, audit, rewriting.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys


class _Copy(asyncio.Protocol):
    """Writes whatever arrives on one pipe to another; closes it and reports when the source ends."""

    def __init__(self, target: asyncio.WriteTransport, ended: asyncio.Event) -> None:
        self._target = target
        self._ended = ended

    def data_received(self, data: bytes) -> None:
        self._target.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._target.close()
        self._ended.set()


async def relay(argv: list[str]) -> int:
    loop = asyncio.get_running_loop()
    child_stdin, to_child = os.pipe()
    from_child, child_stdout = os.pipe()
    child = subprocess.Popen(argv, stdin=child_stdin, stdout=child_stdout)
    os.close(child_stdin)
    os.close(child_stdout)
    to_child_pipe, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(to_child, "wb", buffering=0))
    stdout_pipe, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(os.dup(1), "wb", buffering=0))
    client_gone, child_gone = asyncio.Event(), asyncio.Event()
    await loop.connect_read_pipe(lambda: _Copy(to_child_pipe, client_gone), os.fdopen(os.dup(0), "rb", buffering=0))
    await loop.connect_read_pipe(lambda: _Copy(stdout_pipe, child_gone), os.fdopen(from_child, "rb", buffering=0))
    await child_gone.wait()  # the client closing our stdin closes the child's, and the child then exits
    return child.wait()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(relay(sys.argv[1:])))
