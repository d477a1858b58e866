"""Bulkheads: a per-server cap on calls in flight, with a bounded queue.

A call that finds the queue full, or cannot get a slot before its deadline, fails with
`unavailable` at once instead of piling up — so one slow server cannot exhaust the hub. That is a
`HubRefusal`: the breaker does not count it and the retry policy does not wait it out.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from hub.errors import HubRefusal, HubToolError
from hub.policies.base import GRANTED, MUST_WAIT, Admission, Outcome, Permit, Phase, ToolCall, now

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
    """One `Bulkhead` per server, held for every attempt."""

    phase: Phase = "attempt"

    def __init__(self, limits_for: Callable[[str], tuple[int, int]]) -> None:
        self._limits_for = limits_for
        self.bulkheads: dict[str, Bulkhead] = {}

    def bulkhead(self, server: str) -> Bulkhead:
        found = self.bulkheads.get(server)
        if found is None:
            found = self.bulkheads[server] = Bulkhead(*self._limits_for(server))
        return found

    def admit(self, call: ToolCall) -> Admission:
        """A free slot: taken. None and the queue full: refused at once. Else the call must queue."""
        bulkhead = self.bulkhead(call.route.server)
        try:
            bulkhead.slots.acquire_nowait()
        except anyio.WouldBlock:
            if bulkhead.waiting >= bulkhead.max_queue:
                return _saturated(call, bulkhead, "its queue is full")
            return MUST_WAIT
        return GRANTED

    async def wait(self, call: ToolCall) -> Permit | HubToolError:
        """Queue for a slot until shortly before the deadline."""
        bulkhead = self.bulkhead(call.route.server)
        if bulkhead.waiting >= bulkhead.max_queue:
            return _saturated(call, bulkhead, "its queue is full")
        bulkhead.waiting += 1
        try:
            with anyio.move_on_after(max(0.0, call.deadline_at - now() - DEADLINE_MARGIN_S)):
                await bulkhead.slots.acquire()
                return GRANTED
        finally:
            bulkhead.waiting -= 1
        return _saturated(call, bulkhead, "no slot freed up before the deadline")

    def refusal_at_deadline(self, call: ToolCall) -> HubRefusal:
        """What a call's deadline means when it comes while the call still queues here (the loop ran
        too late for `wait`'s own timer): the same refusal, not a timeout (`hub.calls.drivers`)."""
        return _saturated(call, self.bulkhead(call.route.server), "no slot freed up before the deadline")

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None:
        """Give the slot back."""
        self.bulkhead(call.route.server).slots.release()


def _saturated(call: ToolCall, bulkhead: Bulkhead, why: str) -> HubRefusal:
    """A refusal (`HubRefusal`): not evidence against the server, and not retried."""
    return HubRefusal(
        "unavailable",
        f"server {call.route.server!r} is saturated ({bulkhead.max_concurrency} calls in flight; {why}). "
        "Retry in a moment.",
        retry_after_s=1.0,
        details={"server": call.route.server, "reason": "saturated"},
    )
