"""Bringing a PostgreSQL connection pool back at once when its database answers again.

`psycopg_pool` reconnects a pool that lost its server by itself, but backs off between attempts
(1, 2, 4, 8, 16 s…): after a 10 s outage an idle replica served API keys again only 13 s after
PostgreSQL was back (outside review, cluster round 7), and the event log of webhooks likewise. So
while a database is down, a call looks at most once every `EVERY_S` whether a connection of its own
gets through; when one does, its caller swaps in a fresh pool and the old one is closed aside.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

EVERY_S = 1.0
"""While a database is down, how often a call tries a connection of its own."""


class PoolRevival:
    """Rate-limited checks that a down database answers again (one caller at a time looks)."""

    def __init__(self, url: str, connect: dict[str, Any], every_s: float = EVERY_S) -> None:
        self._url, self._connect, self._every_s = url, connect, every_s
        self._lock = threading.Lock()
        self._looked_at = 0.0

    def answers_again(self) -> bool:
        """Whether a fresh connection gets through now; False at once while another caller looks or
        one looked less than `every_s` ago."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            moment = time.monotonic()
            if moment - self._looked_at < self._every_s:
                return False
            self._looked_at = moment
            try:
                with psycopg.connect(self._url, **self._connect) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True
        finally:
            self._lock.release()


def retire(pool: ConnectionPool) -> None:
    """Close a replaced pool without holding up the call that replaced it."""
    threading.Thread(target=pool.close, kwargs={"timeout": 2}, name="mcp-hub-retired-pool", daemon=True).start()
