"""How often one server's tool changes are applied to the search index (review search15 #1).

A server that sends `notifications/tools/list_changed` every 250 ms, each listing rewording 600
descriptions, kept every caller's `search_tools` at p50 2.7 s: each search waited up to 2 s for a
re-index that was always under way, and the re-embedding took the CPU. Decided:

- a server's first `BURST` applications within `WINDOW_S` are immediate (a server that changes now
  and then is fresh at once); past that, each further one waits `BASE_DELAY_S`, doubled per
  application in the window, at most `MAX_DELAY_S`, after the server's previous one. Changes that
  arrive meanwhile coalesce into the one re-index that applies them. A storm thus costs **that
  server's** freshness (its tools rank as last applied, for up to `MAX_DELAY_S`), and one re-embed per
  `MAX_DELAY_S` of CPU, never another server's freshness or anyone's latency;
- pacing is per server: a quiet server's change is applied at once even while another server storms
  (the re-index keeps the stormy server's last applied tools, `hub.search.service`);
- the clock is injectable, so tests move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

BURST = 3
"""Applications of one server's changes that are immediate within `WINDOW_S` (the first index counts)."""
WINDOW_S = 300.0
"""How far back a server's applications count toward its delay."""
BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0


class ServerPacing:
    """When each server's next change may be applied, from when its last ones were."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._applied: dict[str, deque[float]] = {}

    def applied(self, server: str, at: float | None = None) -> None:
        """Record that `server`'s changes were applied (at `at`, default now)."""
        now = self.clock() if at is None else at
        times = self._applied.setdefault(server, deque(maxlen=BURST + 16))
        times.append(now)
        self._forget(times, now)

    def delay(self, server: str) -> float:
        """How long after its last application `server`'s next change waits (0: applied at once)."""
        times = self._applied.get(server)
        if not times:
            return 0.0
        self._forget(times, self.clock())
        if len(times) < BURST:
            return 0.0
        return min(MAX_DELAY_S, BASE_DELAY_S * 2.0 ** (len(times) - BURST))

    def due_at(self, server: str) -> float:
        """When `server`'s next change may be applied (now or earlier: at once)."""
        delay = self.delay(server)
        times = self._applied.get(server)
        return times[-1] + delay if times and delay else float("-inf")

    def forget(self, server: str) -> None:
        self._applied.pop(server, None)

    @staticmethod
    def _forget(times: deque[float], now: float) -> None:
        while times and times[0] < now - WINDOW_S:
            times.popleft()
