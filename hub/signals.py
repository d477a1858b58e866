"""SIGTERM stops `mcp-hub serve` the way SIGINT does.

Without a handler, SIGTERM ends the process on the spot: no call is cancelled, no child is stopped,
and a stdio server's helpers (its own children, which `setpriv --pdeathsig` does not reach) are
left running. Here SIGTERM does what asyncio does for SIGINT: it cancels the main task, so calls in
flight are cancelled and every stdio child is stopped by process group
(`hub.downstream.stdio.stop_process`) on the way out; `mcp-hub` then exits with 143 (128 + SIGTERM),
as a shell reports a process SIGTERM ended. (Cancelling an anyio scope instead left the SDK's
stdin reader waiting; the task cancel is the path SIGINT has always taken.)

Over HTTP, uvicorn takes SIGTERM (and SIGINT) for itself while it serves, shuts down gracefully
and then raises the signal again: that second delivery reaches this handler and stops the hub.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
_received = False


def sigterm_received() -> bool:
    """Whether `stop_on_sigterm` saw a SIGTERM in this process."""
    return _received


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the body runs, SIGTERM cancels the current (main) task; call from the main thread."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_sigterm(signum: int, frame: object) -> None:
        global _received
        _received = True
        loop.call_soon_threadsafe(task.cancel)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
