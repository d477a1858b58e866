"""Bulkheads: a per-server cap on calls in flight, with a bounded queue, shared fairly among callers.

A call that finds the queue full, or cannot get a slot before its deadline, fails with
`unavailable` at once instead of piling up — so one slow server cannot exhaust the hub. That is a
`HubRefusal`: the breaker does not count it and the retry policy does not wait it out.

One caller must not lock the others out of a server (outside review: sixteen hung calls of one
principal kept every other principal waiting until their deadlines). So, whenever callers can be
told apart (`hub.auth.enabled`: API keys or tokens, `hub.auth.principal.identity`) — from the first
call, since the first caller after a start must not be able to take every slot either — and else
once a server has seen calls of more than one identity:
- a caller holds at most `per_caller` slots (`max_concurrency_per_caller`; by default all but a
  quarter, so a newcomer finds a slot free at once);
- the last free slot goes only to a caller holding none, as its first slot: a caller cannot take
  it as a second (outside review: 12 + 4 calls of two colluding principals kept a third waiting
  17 s), though callers each taking their first slot can fill a server (12 + 3 + 1 of 16; on a
  bulkhead of 2 to 7 slots, two callers). One slot, not the quarter a share keeps back: keeping a
  quarter cut a second caller to one call at a time beside a busy one, three slots idle (re-check);
- a freed slot goes to the waiting caller holding the fewest slots (the longest waiting among
  equals), not to whoever queued first;
- a full queue takes a newcomer's call by refusing the newest queued call of the caller with the
  most queued, when that caller has more queued than the newcomer.
A server only one identity ever called (stdio, auth off) keeps every slot for it. Decided: a
`resources/read`, `prompts/get` or `completion/complete` forwarded to the server takes a slot too
(`acquire`), by the same share and queue: "calls in flight" are every request a caller has there. Decided: with
auth on, a caller alone still holds at most its share (12 of 16 by default): the slots kept back are
what lets the next caller in at once.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from hub.calls.call import caller_identity
from hub.errors import HubRefusal, HubToolError
from hub.policies.base import GRANTED, MUST_WAIT, Admission, Outcome, Permit, Phase, ToolCall, now

DEADLINE_MARGIN_S = 0.02
"""Give up waiting for a slot this long before the deadline, so the caller sees `unavailable`."""

Caller = tuple[str, str]
NOBODY: Caller = ("", "")
"""The identity of a call without a caller (the hub's own calls)."""


def caller_of(call: ToolCall) -> Caller:
    """The identity the bulkhead shares slots by."""
    return caller_identity(call) or NOBODY


def default_share(max_concurrency: int) -> int:
    """Slots one caller may hold while others use the server: all but a quarter (at least one kept back)."""
    return max(1, max_concurrency - max(1, max_concurrency // 4))


@dataclass(eq=False)
class Waiter:
    """One queued call: set once it was handed a slot, or refused to make room."""

    caller: Caller
    since: float = field(default_factory=now)
    done: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False
    evicted: bool = False


class Bulkhead:
    """Slots and a queue for one server (see the module for how they are shared)."""

    def __init__(self, max_concurrency: int, max_queue: int, per_caller: int | None = None, shared: bool = False) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.per_caller = min(max_concurrency, per_caller or default_share(max_concurrency))
        self.reserve = min(1, max_concurrency - self.per_caller)
        """Free slots kept for a caller holding none (a share of every slot keeps none back)."""
        self.free = max_concurrency
        self.held: Counter[Caller] = Counter()
        self.queues: dict[Caller, deque[Waiter]] = {}
        self.waiting = 0
        self.first_caller: Caller | None = None
        self.shared = shared
        """Several identities can call (auth on), or have: the per-caller share applies."""

    @property
    def busy(self) -> int:
        return self.max_concurrency - self.free

    def note(self, caller: Caller) -> None:
        """Remember whether the server is shared by several callers."""
        if self.first_caller is None:
            self.first_caller = caller
        elif caller != self.first_caller:
            self.shared = True

    def may_take(self, caller: Caller) -> bool:
        """A slot is free and `caller` is within its share; the reserved slots only for a first slot."""
        if self.free <= 0 or not self.shared:
            return self.free > 0
        held = self.held[caller]
        return held < self.per_caller and (held == 0 or self.free > self.reserve)

    def take(self, caller: Caller) -> None:
        self.free -= 1
        self.held[caller] += 1

    def release(self, caller: Caller) -> None:
        """Give `caller`'s slot back, and hand free slots to the fairest waiters."""
        if self.held[caller] <= 1:
            self.held.pop(caller, None)
        else:
            self.held[caller] -= 1
        self.free += 1
        self.hand_out()

    def hand_out(self) -> None:
        """While a slot is free and a waiting caller may take it, grant its oldest call."""
        while self.free > 0:
            eligible = [(self.held[c], q[0].since, c) for c, q in self.queues.items() if self.may_take(c)]
            if not eligible:
                return
            _, _, caller = min(eligible)
            waiter = self._pop(caller, 0)
            self.take(caller)
            waiter.granted = True
            waiter.done.set()

    def enqueue(self, caller: Caller) -> Waiter | None:
        """Queue a call of `caller`; None when the queue is full and nobody queues more than it."""
        if self.waiting >= self.max_queue:
            mine = len(self.queues.get(caller, ()))
            longest = max(self.queues, key=lambda c: len(self.queues[c]), default=None)
            if longest is None or len(self.queues[longest]) <= mine + 1:
                return None
            evicted = self._pop(longest, -1)
            evicted.evicted = True
            evicted.done.set()
        waiter = Waiter(caller)
        self.queues.setdefault(caller, deque()).append(waiter)
        self.waiting += 1
        return waiter

    def leave(self, waiter: Waiter) -> None:
        """A queued call gave up (deadline, cancel): out of the queue, or its slot back if one came."""
        if waiter.granted:
            self.release(waiter.caller)
            return
        queue = self.queues.get(waiter.caller)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self.waiting -= 1
            if not queue:
                del self.queues[waiter.caller]

    def _pop(self, caller: Caller, index: int) -> Waiter:
        queue = self.queues[caller]
        waiter = queue.popleft() if index == 0 else queue.pop()
        self.waiting -= 1
        if not queue:
            del self.queues[caller]
        return waiter


class BulkheadPolicy:
    """One `Bulkhead` per server, held for every attempt."""

    phase: Phase = "attempt"

    def __init__(self, limits_for: Callable[[str], tuple[int, int] | tuple[int, int, int | None]],
                 several_callers: bool = False) -> None:
        self._limits_for = limits_for
        self._several_callers = several_callers
        """Callers are told apart (auth on): every bulkhead shares its slots from the first call."""
        self.bulkheads: dict[str, Bulkhead] = {}

    def bulkhead(self, server: str) -> Bulkhead:
        found = self.bulkheads.get(server)
        if found is None:
            limits = self._limits_for(server)
            found = self.bulkheads[server] = Bulkhead(limits[0], limits[1], limits[2] if len(limits) > 2 else None,
                                                      shared=self._several_callers)
        return found

    def admit(self, call: ToolCall) -> Admission:
        """A slot this caller may take: taken. None and no room in the queue: refused at once. Else
        the call must queue. (Nobody of a fairer claim is waiting when a slot is free: `hand_out`
        runs on every release.)"""
        bulkhead = self.bulkhead(call.route.server)
        caller = caller_of(call)
        bulkhead.note(caller)
        if bulkhead.may_take(caller):
            bulkhead.take(caller)
            return GRANTED
        if bulkhead.waiting >= bulkhead.max_queue and not _can_displace(bulkhead, caller):
            return _saturated(call, bulkhead, "its queue is full")
        return MUST_WAIT

    async def wait(self, call: ToolCall) -> Permit | HubToolError:
        """Queue for a slot until shortly before the deadline."""
        server = call.route.server
        refused = await self._queued(server, self.bulkhead(server), caller_of(call), call.deadline_at)
        return GRANTED if refused is None else refused

    async def acquire(self, server: str, caller: Caller, deadline_at: float) -> HubRefusal | None:
        """A slot of `server` for a forwarded request other than a tool call (`resources/read`,
        `prompts/get`, `completion/complete`: `hub.forwarded`), shared with the tool calls by the same
        rules, queued until shortly before `deadline_at` (`now()` time); None once held (give it back with
        `give_back`), else the same `unavailable` a tool call gets. Outside review isolation21 #2: reads
        took no slot, so one read-only caller's flood timed out another caller's tool call."""
        bulkhead = self.bulkhead(server)
        bulkhead.note(caller)
        return await self._queued(server, bulkhead, caller, deadline_at)

    async def _queued(self, server: str, bulkhead: Bulkhead, caller: Caller, deadline_at: float) -> HubRefusal | None:
        """A slot of `bulkhead` for `caller`: taken now if one is free (freed while the request was on its
        way here), else queued for until shortly before `deadline_at`; None once held, else the refusal."""
        if bulkhead.may_take(caller):
            bulkhead.take(caller)
            return None
        waiter = bulkhead.enqueue(caller)
        if waiter is None:
            return _refusal(server, bulkhead, "its queue is full")
        try:
            with anyio.move_on_after(max(0.0, deadline_at - now() - DEADLINE_MARGIN_S)):
                await waiter.done.wait()
        except BaseException:
            bulkhead.leave(waiter)  # cancelled: out of the queue, or the slot it was just handed goes back
            raise
        if waiter.granted:
            return None
        if waiter.evicted:
            return _refusal(server, bulkhead, "its queue is full and another caller's calls fill it")
        bulkhead.leave(waiter)
        return _refusal(server, bulkhead, "no slot freed up before the deadline")

    def give_back(self, server: str, caller: Caller) -> None:
        """The slot `acquire` took for a forwarded request (to the fairest waiter, if any)."""
        self.bulkhead(server).release(caller)

    def refusal_at_deadline(self, call: ToolCall) -> HubRefusal:
        """What a call's deadline means when it comes while the call still queues here (the loop ran
        too late for `wait`'s own timer): the same refusal, not a timeout (`hub.calls.drivers`)."""
        return _saturated(call, self.bulkhead(call.route.server), "no slot freed up before the deadline")

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None:
        """Give the slot back (to the fairest waiter, if any)."""
        self.bulkhead(call.route.server).release(caller_of(call))


def _can_displace(bulkhead: Bulkhead, caller: Caller) -> bool:
    """Whether a call of `caller` may take the place of another caller's newest queued call."""
    mine = len(bulkhead.queues.get(caller, ()))
    return any(len(queue) > mine + 1 for queue in bulkhead.queues.values())


def _saturated(call: ToolCall, bulkhead: Bulkhead, why: str) -> HubRefusal:
    """A refusal (`HubRefusal`): not evidence against the server, and not retried."""
    return _refusal(call.route.server, bulkhead, why)


def _refusal(server: str, bulkhead: Bulkhead, why: str) -> HubRefusal:
    return HubRefusal(
        "unavailable",
        f"server {server!r} is saturated ({bulkhead.max_concurrency} calls in flight; {why}). "
        "Retry in a moment.",
        retry_after_s=1.0,
        details={"server": server, "reason": "saturated"},
    )
