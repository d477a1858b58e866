"""A watcher that kills the stdio children's process groups when the hub dies, even by SIGKILL.

A child carries a parent-death signal (`setpriv --pdeathsig KILL`), but that reaches the child
alone: helpers it started in its process group would outlive a hub killed with SIGKILL. So the
first stdio child also starts this watcher: a tiny stdlib-only Python process in a session of its
own, reading process-group ids from a pipe only the hub holds open (`+pgid` when a child starts,
`-pgid` once the hub has stopped that group itself). When the pipe ends — the hub exited, however
it exited — the watcher SIGKILLs every group still registered, then exits. Best effort: if the
watcher cannot start, the hub runs as before (children still get their parent-death signal).

While the hub runs, helpers of a stopped server's group that were re-parented to it (a subreaper)
and killed with the group are reaped (`reap_group_later`), so they do not pile up as zombies.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

logger = logging.getLogger("hub.downstream")

_WATCHER = r"""
import os, signal, sys
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+" and line[1:].isascii() and line[1:].isdigit():
        groups.add(int(line[1:]))
    elif line[:1] == "-" and line[1:].isascii() and line[1:].isdigit():
        groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_pipe: int | None = None
_started = False
_watcher: subprocess.Popen[bytes] | None = None
_subreaper = False
_orphans_killed = False


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux): a helper that leaves its
    server's process group (`setsid`, a double fork) and outlives the server is re-parented to the
    hub, not to init, so `kill_adopted_orphans` finds it at the hub's exit. Best effort."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _subreaper = False
    if _subreaper:  # after whatever stops the children at exit (atexit runs last-registered first)
        atexit.register(kill_adopted_orphans, set())
    return _subreaper


ORPHAN_SETTLE_S = 0.3
"""How long `kill_adopted_orphans` keeps looking: a helper is re-parented only once its server has
died, which a SIGKILL just sent to the server's group brings about a moment later."""


def kill_adopted_orphans(keep: set[int]) -> list[int]:
    """SIGKILL (with their process groups) the processes re-parented to this subreaper, except the
    pids in `keep` (children the hub runs itself), and reap them; the pids killed. For the hub's
    exit only: while it runs, an orphan may be a live server's daemon."""
    global _orphans_killed
    if not _subreaper or _orphans_killed:
        return []
    _orphans_killed = True  # exit-time only: once is enough (the last resort and atexit may both ask)
    killed: list[int] = []
    deadline = time.monotonic() + ORPHAN_SETTLE_S
    while True:
        killed += _kill_children_once(keep | set(killed))
        if time.monotonic() >= deadline:
            return killed
        time.sleep(0.02)


REAP_AFTER_S = (0.1, 1.0, 5.0)
"""When `reap_group_later` looks for a stopped group's zombies (its members die a moment after the
group's SIGKILL; a slow machine may take longer)."""


def reap_group_later(pgid: int) -> None:
    """Reap, over the next few seconds (`REAP_AFTER_S`), the members of the stopped process group
    `pgid` that were re-parented to this subreaper when their server died: killed with the group,
    they would stay zombies until the hub exits, a few more at every restart of a server with helpers.
    Only members that are not the group's leader (the server itself, which its own waiter reaps):
    the hub starts none but the leader in such a group, so no exit status anyone waits for is taken."""
    if not _subreaper:
        return
    loop = asyncio.get_running_loop()
    for delay in REAP_AFTER_S:
        loop.call_later(delay, reap_group_zombies, pgid)


def reap_group_zombies(pgid: int) -> list[int]:
    """Reap this process's zombie children in process group `pgid`, its leader excepted; their pids."""
    me, reaped = os.getpid(), []
    for pid, fields in process_stats():
        if pid == pgid or fields[0] != "Z" or int(fields[1]) != me or int(fields[2]) != pgid:
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                reaped.append(pid)
    return reaped


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """Every process in /proc whose stat can be read, with its `stat_fields`."""
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isascii() and entry.isdigit() and (fields := stat_fields(entry)) is not None:
                yield int(entry), fields


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command (state, parent id, process group, …); None
    if it cannot be read. The command sits in parentheses and may hold spaces and ')': split after the last."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _kill_children_once(keep: set[int]) -> list[int]:
    me, own_group, killed = os.getpid(), os.getpgrp(), []
    for pid, fields in process_stats():
        if pid in keep or pid == watcher_pid() or int(fields[1]) != me:
            continue
        group = int(fields[2])
        with contextlib.suppress(OSError):
            if group not in (own_group, 0):
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    for pid in killed:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
    return killed


def start_watcher() -> int | None:
    """The write end of the watcher's stdin, starting the watcher on first use; None if it cannot run."""
    global _pipe, _started, _watcher
    with _lock:
        if _started:
            return _pipe
        _started = True
        become_subreaper()
        try:
            read_end, write_end = os.pipe()
            os.set_inheritable(write_end, False)  # only the hub holds it: children never keep the watcher alive
            _watcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHER], stdin=read_end,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                        close_fds=True)
            os.close(read_end)
            _pipe = write_end
        except OSError as exc:  # best effort: the parent-death signal still covers each child
            logger.warning("no orphan watcher for stdio children (%s); a hub killed with SIGKILL may leave "
                           "their helper processes behind", exc)
            _pipe = None
        return _pipe


def _send(line: str) -> None:
    pipe = start_watcher()
    if pipe is None:
        return
    try:
        os.write(pipe, line.encode())
    except OSError:  # the watcher is gone: nothing more can be done for later children
        pass


def watch_group(pgid: int) -> None:
    """Have the watcher SIGKILL process group `pgid` if the hub dies before `release_group(pgid)`."""
    _send(f"+{pgid}\n")


def release_group(pgid: int) -> None:
    """The hub stopped group `pgid` itself: the watcher forgets it (its id may be reused later)."""
    if _pipe is not None:
        _send(f"-{pgid}\n")


def watcher_pid() -> int | None:
    """The watcher's pid once started (it lives as long as this process), else None."""
    return _watcher.pid if _watcher is not None else None
