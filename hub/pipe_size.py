"""Wider pipes for the big answers the hub relays: each stdio child's stdout, and its own stdout.

A Linux pipe holds 64 KiB by default: a 48 MB line (a 24 MB text result, repeated as structured content)
crossing it wakes its reader and its writer ~750 times each, twice through the hub. The hub sets the pipes
it reads answers from and writes answers to to `PIPE_BYTES` (`MCP_HUB_PIPE_BYTES`, default 1 MiB, the
default `/proc/sys/fs/pipe-max-size`; 0 leaves them as they are). Measured (`tools/bench/big_results.py
--rounds 5 --fronts stdio`, three interleaved runs each): a 24 MB `x` result 1.19–1.21x direct against
1.26–1.41x. Small messages are unaffected: a pipe's size is a bound, not a buffer that waits to fill.

A user's pipes share a kernel budget (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB): while a user is at it,
every new pipe of theirs gets one page. So at most `MAX_WIDE` of the hub's open pipes are widened (16 MiB);
requests (the other direction) keep the default, and a pipe the kernel refuses to widen stays as it is.
"""

from __future__ import annotations

import fcntl
import os
import stat
import weakref
from typing import IO, Any

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_BYTES = int(os.environ.get("MCP_HUB_PIPE_BYTES") or 1024 * 1024)
MAX_WIDE = 16
_wide: weakref.WeakSet[IO[Any]] = weakref.WeakSet()


def widen_pipe(pipe: IO[Any], size: int | None = None) -> int | None:
    """Let pipe `pipe` hold `size` bytes (default `PIPE_BYTES`; best effort); its size after, None when left as
    it was (not a pipe, turned off, `MAX_WIDE` already open, or refused by the kernel)."""
    size = PIPE_BYTES if size is None else size
    if size <= 0 or sum(1 for other in _wide if not other.closed) >= MAX_WIDE:
        return None
    try:
        if not stat.S_ISFIFO(os.fstat(pipe.fileno()).st_mode):
            return None
        done = fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, size)
    except (OSError, ValueError):  # over pipe-max-size or the user's pipe budget; or closed: kept as is
        return None
    _wide.add(pipe)
    return int(done)
