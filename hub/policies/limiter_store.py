"""Health of the rate limiter's shared store (Redis): one log line when it becomes unreachable,
one when it is back, and a report for `/healthz`.

While the store is down, only one call per `PROBE_INTERVAL_S` tries it (the others apply
`fail_mode` at once), so an outage where Redis hangs costs callers no socket timeouts.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Callable

from hub.redact import mask

logger = logging.getLogger("hub.ratelimit")
PROBE_INTERVAL_S = 1.0


class StoreHealth:
    def __init__(self, fail_mode: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.fail_mode = fail_mode
        self._clock = clock
        self.down_since: float | None = None
        """Wall-clock time the current outage began (None: the store answers)."""
        self.last_error: str | None = None
        self.refused = 0
        """Calls refused because of the current outage."""
        self.passed = 0
        """Calls let through unlimited because of the current outage (`fail_mode = open`)."""
        self._next_try = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    @property
    def retry_after_s(self) -> float:
        return PROBE_INTERVAL_S

    def should_try(self) -> bool:
        """Whether this call should use the store (always while up; once per interval while down)."""
        if self.down_since is None:
            return True
        now = self._clock()
        if now < self._next_try:
            return False
        self._next_try = now + PROBE_INTERVAL_S
        return True

    def failed(self, exc: BaseException) -> None:
        """The store did not answer: start an outage (logged once), or extend the current one."""
        self.last_error = mask(f"{type(exc).__name__}: {exc}"[:300])
        self._next_try = self._clock() + PROBE_INTERVAL_S
        if self.down_since is None:
            self.down_since = time.time()
            self.refused = self.passed = 0
            logger.error("rate limiter store unreachable (%s); applying rate_limit.fail_mode = %s until it is back",
                         self.last_error, self.fail_mode)

    def succeeded(self) -> bool:
        """The store answered; True when that ends an outage (logged once)."""
        if self.down_since is None:
            return False
        logger.warning("rate limiter store reachable again after %.1fs (%d calls refused, %d let through unlimited)",
                       time.time() - self.down_since, self.refused, self.passed)
        self.down_since, self.last_error = None, None
        return True

    def report(self) -> dict[str, Any]:
        """`{"backend": "redis", "state": "ok" | "unreachable", "fail_mode", ...}` for `/healthz`."""
        out: dict[str, Any] = {"backend": "redis", "state": "ok" if self.up else "unreachable", "fail_mode": self.fail_mode}
        if self.down_since is not None:
            out.update(since=datetime.fromtimestamp(self.down_since, UTC).isoformat(timespec="seconds"),
                       last_error=self.last_error, refused=self.refused, let_through=self.passed)
        return out
