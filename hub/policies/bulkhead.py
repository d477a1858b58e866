"""Bulkheads: a per-server cap on calls in flight, with a bounded queue.

A call that finds the queue full, or cannot get a slot before its deadline, fails with
`unavailable` at once instead of piling up — so one slow server cannot exhaust the hub. That is a
`HubRefusal`: the breaker does not count it and the retry policy does not wait it out.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from hub.wire import ToolResult
from hub.errors import HubRefusal
from hub.policies.base import CallNext, ToolCall, now

DEADLINE_MARGIN_S = 0.02
"""Give up waiting for a slot this long before the deadline, so the caller sees `unavailable`."""


class Bulkhead:
    """Slots and a queue for one server."""

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.slots = anyio.Semaphore(max_concurrency)
        self.waiting = 0

    @property
    def busy(self) -> int:
        return self.max_concurrency - self.slots.value


class BulkheadPolicy:
    def __init__(self, limits_for: Callable[[str], tuple[int, int]]) -> None:
        self._limits_for = limits_for
        self.bulkheads: dict[str, Bulkhead] = {}

    def bulkhead(self, server: str) -> Bulkhead:
        found = self.bulkheads.get(server)
        if found is None:
            found = self.bulkheads[server] = Bulkhead(*self._limits_for(server))
        return found

    async def __call__(self, call: ToolCall, call_next: CallNext) -> ToolResult:
        bulkhead = self.bulkhead(call.route.server)
        if call.sent is None:  # else the express path holds a slot for this call already
            try:
                bulkhead.slots.acquire_nowait()
            except anyio.WouldBlock:
                await self._wait_for_slot(call, bulkhead)
        try:
            return await call_next(call)
        finally:
            bulkhead.slots.release()

    @staticmethod
    async def _wait_for_slot(call: ToolCall, bulkhead: Bulkhead) -> None:
        if bulkhead.waiting >= bulkhead.max_queue:
            raise _saturated(call, bulkhead, "its queue is full")
        bulkhead.waiting += 1
        acquired = False
        try:
            with anyio.move_on_after(max(0.0, call.deadline_at - now() - DEADLINE_MARGIN_S)):
                await bulkhead.slots.acquire()
                acquired = True
        finally:
            bulkhead.waiting -= 1
        if not acquired:
            raise _saturated(call, bulkhead, "no slot freed up before the deadline")


def _saturated(call: ToolCall, bulkhead: Bulkhead, why: str) -> HubRefusal:
    """A refusal (`HubRefusal`): not evidence against the server, and not retried."""
    return HubRefusal(
        "unavailable",
        f"server {call.route.server!r} is saturated ({bulkhead.max_concurrency} calls in flight; {why}). "
        "Retry in a moment.",
        retry_after_s=1.0,
        details={"server": call.route.server, "reason": "saturated"},
    )
