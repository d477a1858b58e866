"""A stdio child's process: spawned in a process group of its own, stopped with that whole group, and
every live group killed at any exit of the hub.

`hub.downstream.stdio.stdio_child` runs the connection over the child's pipes; here is what outlives
no hub: `spawn` (its own group, our ends of its pipes), `stop_process` (stdin closed, then SIGTERM, then
SIGKILL to the group, each after a grace period; helpers reaped), and `kill_live_groups`, the last step
before any exit (registered with `hub.signals.on_last_resort` and `atexit` on import).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
from collections.abc import Callable
from contextlib import suppress

import anyio
import anyio.abc

from hub.downstream.adopted import AdoptedProcess
from hub.downstream.reaper import kill_adopted_orphans, reap_group_later, release_group
from hub.prestart import ChildStartError, discard_all
from hub.signals import on_last_resort

__all__ = ["LIVE_GROUPS", "SIGTERM_GRACE_S", "STDIN_CLOSE_GRACE_S", "kill_live_groups", "spawn", "stop_process", "wait_exit"]

STDIN_CLOSE_GRACE_S = 2.0
SIGTERM_GRACE_S = 2.0

LIVE_GROUPS: set[int] = set()
"""Process groups of the stdio children running now (each child leads its own group)."""


async def spawn(argv: list[str], env: dict[str, str], cwd: str | None, command: str) -> tuple[anyio.abc.Process, int, int]:
    """Spawn the child in its own process group; return it and our ends of its stdin and stdout.
    Those are our own pipes, read and written by asyncio protocols (`hub.frontends.stdio.line_pipes`);
    the process itself (spawn, exit status, stderr) is anyio's."""
    child_stdin, our_stdin = os.pipe()
    our_stdout, child_stdout = os.pipe()
    try:
        process = await anyio.open_process(argv, stdin=child_stdin, stdout=child_stdout, env=env, cwd=cwd,
                                           start_new_session=True)
    except OSError as exc:
        os.close(our_stdin)
        os.close(our_stdout)
        raise ChildStartError(f"could not start {command!r}: {exc.strerror or exc}") from exc
    finally:
        os.close(child_stdin)  # the child has its copies
        os.close(child_stdout)
    return process, our_stdin, our_stdout


async def wait_exit(process: anyio.abc.Process | AdoptedProcess, timeout: float) -> int | None:
    """The child's return code once it exits within `timeout` seconds, else None (it runs on)."""
    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(0.01)
    return process.returncode


async def stop_process(process: anyio.abc.Process | AdoptedProcess, log: logging.Logger, close_stdin: Callable[[], None]) -> None:
    """Close stdin, then SIGTERM and SIGKILL the child's process group, each after a grace period.
    However the leader ended, the group gets a last SIGKILL: a helper that ignores SIGTERM must
    not outlive its server (the group outlives its leader as long as one member is alive)."""
    with suppress(Exception):
        close_stdin()
    if await wait_exit(process, STDIN_CLOSE_GRACE_S) is None:
        _signal_group(process.pid, signal.SIGTERM)
        if await wait_exit(process, SIGTERM_GRACE_S) is None:
            _signal_group(process.pid, signal.SIGKILL)
            await wait_exit(process, 2.0)
    _signal_group(process.pid, signal.SIGKILL)
    LIVE_GROUPS.discard(process.pid)
    release_group(process.pid)
    reap_group_later(process.pid)  # its helpers, re-parented to the hub and killed with the group
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with suppress(Exception):
                await stream.aclose()
    log.info("stopped (returncode=%s)", process.returncode)


def kill_live_groups() -> None:
    """SIGKILL every child's process group, every pre-started one not adopted yet, and every helper
    that left its server's group and was re-parented to the hub (`reaper.kill_adopted_orphans`):
    the last step before any exit (`hub.signals`, atexit)."""
    discard_all()
    for pid in list(LIVE_GROUPS):
        _signal_group(pid, signal.SIGKILL)
    kill_adopted_orphans(set(LIVE_GROUPS))


on_last_resort(kill_live_groups)
# And at any exit: a child whose stop never ran (a stop signal during its handshake ends the hub
# before the connection unwinds) must not outlive the hub with its helpers.
atexit.register(kill_live_groups)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
