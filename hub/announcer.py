"""Telling listeners (client sessions, tool search, other replicas) that a list changed, off the path
that changed it.

Each announcement runs in the hub's task group, never inside a server's connection: a slow listener
(a tool-search re-index embedding a big server's new tools for seconds) must not hold up that
server — before, a Disable waited for the re-index to end before the server stopped. Each listener
has its own queue: it is told of one change at a time, in order, the kinds that come meanwhile
merged, so a slow listener delays only itself, and a server that keeps announcing changes cannot
pile up tasks or worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio.abc

from hub.downstream.listing import ListKind
from hub.errors import describe_failure

logger = logging.getLogger("hub")

ChangeListener = Callable[[ListKind], Awaitable[None]]
ALL_KINDS: tuple[ListKind, ...] = ("tools", "resources", "prompts")


class _Queue:
    """One listener and the kinds it has still to be told of."""

    def __init__(self, listener: ChangeListener) -> None:
        self.listener = listener
        self.kinds: list[ListKind] = []
        self.busy = False

    async def drain(self) -> None:
        try:
            while self.kinds:
                kind = self.kinds.pop(0)
                try:
                    await self.listener(kind)
                except Exception as exc:  # boundary: one broken client must not stop the others
                    logger.warning("could not notify a client of a %s change: %s", kind, describe_failure(exc))
        finally:
            self.busy = False


class ChangeAnnouncer:
    """The hub's change listeners, each with the announcements queued for it."""

    def __init__(self) -> None:
        self._queues: list[_Queue] = []

    def add(self, listener: ChangeListener) -> None:
        self._queues.append(_Queue(listener))

    def soon(self, task_group: anyio.abc.TaskGroup | None, kinds: Sequence[ListKind]) -> None:
        """Tell every listener of `kinds` in `task_group`, after what it is being told now (nothing
        when the hub is not running: no client holds a list then)."""
        if task_group is None:
            return
        for queue in self._queues:
            queue.kinds.extend(kind for kind in kinds if kind not in queue.kinds)
            if not queue.busy and queue.kinds:
                queue.busy = True
                task_group.start_soon(queue.drain)
