"""One folder ingest at a time per memory server, the next one taken by owner in turn (outside review r38a #4).

A first-come queue let one caller's five queued jobs (each a full re-embedding of a folder, if it changed the chunk
size) hold back every other caller's. Now, when a job ends, the next to run is the oldest waiting job of the owner
whose last job ran longest ago (an owner never served first): another caller's job waits for at most the job
running now and one job of each other owner waiting, never for an owner's whole queue."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

import anyio

KEPT_OWNERS = 1000
"""Owners whose last turn is remembered (the longest ago are forgotten first: they then count as never served)."""


class FairTurns:
    """Turns of one resource among owners, one holder at a time."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: dict[Hashable, deque[anyio.Event]] = {}
        self._last_turn: dict[Hashable, int] = {}
        self._turns = 0

    @asynccontextmanager
    async def turn(self, owner: Hashable) -> AsyncIterator[None]:
        """Hold the resource for `owner`, after the turns of those ahead of it."""
        if self._busy or self._waiting:
            handed = anyio.Event()
            self._waiting.setdefault(owner, deque()).append(handed)
            try:
                await handed.wait()
            except BaseException:  # cancelled while waiting: out of the queue, or pass on a turn just handed over
                if handed.is_set():
                    self._hand_on()
                else:
                    queue = self._waiting.get(owner)
                    if queue is not None and handed in queue:
                        queue.remove(handed)
                        if not queue:
                            del self._waiting[owner]
                raise
        self._busy = True
        self._turns += 1
        self._last_turn.pop(owner, None)
        self._last_turn[owner] = self._turns  # newest last
        if len(self._last_turn) > KEPT_OWNERS:
            del self._last_turn[next(iter(self._last_turn))]
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        if not self._waiting:
            self._busy = False
            return
        owner = min(self._waiting, key=lambda who: self._last_turn.get(who, 0))  # ties: the one waiting longest
        queue = self._waiting[owner]
        handed = queue.popleft()
        if not queue:
            del self._waiting[owner]
        handed.set()  # still busy: the turn goes to it
