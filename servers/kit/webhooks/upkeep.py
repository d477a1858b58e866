"""The change feed's retention in every process that serves it, not only where a webhook processor runs.

Decided (events round 28: `mcp-hub server ticketing` over stdio — Claude Desktop's way — emitted a change
per embedded write and never trimmed, so `kit_changes` grew for ever): `install_feed_upkeep` runs a
`FeedUpkeep` for as long as the server's lifespan lasts, which every transport enters (stdio once per
process, Streamable HTTP once per app, an in-process client of the hub once per connection). It looks at
start and then every `every_s` (the processor's purge interval, an hour), in the background: a tool call
never waits for it, and each transaction deletes at most `feed.TRIM_BATCH` changes. Processes sharing
a store (a stdio copy beside an HTTP one, the hub's processor beside the lifespan) do not trim one scope
twice per interval: the first to look claims it in the store (`ChangeFeed.trim_if_due`), and several
loops in one process share one `FeedUpkeep`, which looks once per interval whichever loop wakes first.
The next look is a wall-clock instant, but no wait is longer than the interval: after the clock steps back,
the look is due at once (outside review s28 #7: a clock 30 days ahead at start stalled the trim 30 days).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from servers.kit.webhooks.feed import RETRY_S, ChangeFeed

logger = logging.getLogger("servers.webhooks")


class FeedUpkeep:
    """Trims one feed when due; `run` loops for ever (cancel it to stop)."""

    def __init__(self, feed: ChangeFeed, every_s: float = 3600.0) -> None:
        self.feed = feed
        self.every_s = every_s
        self._next = 0.0
        """When this process looks again (shared by every loop running this upkeep)."""

    async def tick(self, now: float | None = None) -> float:
        """Trim if due (here and in the store); seconds until the next look. Never raises: retention can wait."""
        now = time.time() if now is None else now
        if now < self._next <= now + self.every_s:
            return self._next - now
        # beyond the interval: the wall clock stepped back since the last look (a host that booted with its clock
        # ahead, then NTP): due now, as the store claim says (`trim_if_due`), never a sleep for the whole step
        self._next = now + self.every_s  # before awaiting: a second loop of this process does not look too
        try:
            await self.feed.trim_if_due(now, self.every_s)
        except Exception as exc:  # noqa: BLE001 — a busy or closed store: try again soon, never fail the server
            logger.warning("change feed retention of %s failed (%s: %s); retrying in %gs — if it lasts, check that "
                           "file's disk space and permissions", getattr(self.feed.store.path, "name", "?"), type(exc).__name__,
                           str(exc)[:120], RETRY_S)
            self._next = now + min(RETRY_S, self.every_s)
        return min(self.every_s, max(0.0, self._next - now))

    async def run(self) -> None:
        while True:
            await anyio.sleep(await self.tick())


def install_feed_upkeep(server: Any, upkeep: FeedUpkeep) -> None:
    """Run `upkeep` inside `server`'s lifespan (an `MCPServer` or a low-level `Server`), wrapping the one it has."""
    lowlevel = getattr(server, "_lowlevel_server", server)  # noqa: SLF001 — MCPServer has no public lifespan hook
    inner = lowlevel.lifespan

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state, anyio.create_task_group() as group:
            group.start_soon(upkeep.run)
            try:
                yield state
            finally:
                group.cancel_scope.cancel()

    lowlevel.lifespan = lifespan
