"""Console sign-outs kept in the data dir, so a sealed session signed out stays signed out after a restart.

A sealed console session carries all it needs in its cookie, valid for `MAX_AGE_S` by its own clock;
its sign-out was recorded only in memory (and in Redis when set), so after a restart of a replica
without Redis a copy of the signed-out cookie worked again and could mint keys (outside review
console26 #6). Decided: each sign-out is written to `console-signed-out.json` in the data dir (0600)
until the session could no longer be opened anyway, read at start and checked on every console
request. The file holds SHA-256 digests of the sessions' random ids, never the ids or cookies. A
write that fails is logged and the sign-out holds in memory (as before); the file is read again
before each write, so replicas sharing a data dir keep each other's entries.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from hub.cluster.signing import id_digest

logger = logging.getLogger("hub.admin")

FILE_NAME = "console-signed-out.json"
MAX_ENTRIES = 10_000
"""Sign-outs kept (the soonest to expire dropped first); thousands of sign-outs in 8 h is not a console's use."""


class SignedOut:
    """Digest of a signed-out session id → when the session could no longer be opened anyway."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ends: dict[str, float] = self._read()

    def holds(self, sid: str) -> bool:
        """Whether the session `sid` was signed out (and could still be opened)."""
        expires_at = self._ends.get(id_digest(sid))
        return expires_at is not None and expires_at > time.time()

    def add(self, sid: str, expires_at: float) -> None:
        """Record a sign-out, here at once and in the file (merged with what is there)."""
        ends = {**self._read(), **self._ends, id_digest(sid): expires_at}
        self._ends = _pruned(ends)
        try:
            self._write(self._ends)
        except OSError as exc:
            logger.warning("could not keep a console sign-out in %s (%s); it holds until this hub restarts",
                           self.path, type(exc).__name__)

    def _read(self) -> dict[str, float]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("could not read console sign-outs from %s (%s); sessions signed out before this "
                           "start may be accepted again", self.path, type(exc).__name__)
            return {}
        if not isinstance(raw, dict):
            return {}
        return _pruned({str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)})

    def _write(self, ends: dict[str, float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(ends, out, separators=(",", ":"))
        os.replace(temporary, self.path)


def _pruned(ends: dict[str, float]) -> dict[str, float]:
    now = time.time()
    live = sorted(((at, digest) for digest, at in ends.items() if at > now), reverse=True)[:MAX_ENTRIES]
    return {digest: at for at, digest in live}
