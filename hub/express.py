"""The express path: a relayed `tools/call` that needs no waiting runs in callbacks alone.

Most calls wait for nothing but their answer: the breaker is closed, the bulkhead has a free slot,
the arguments are valid, the child's stdin takes the line at once, the answer comes back complete
and is not a transient failure. For those, a task, a chain of policy coroutines and a cancel scope
per call were most of what the hub cost. `Hub.start_express` makes every admission decision of
the policy chain synchronously, in the callback that read the client's line, and sends the call;
`ExpressCall` finishes it in the callback that reads the answer — releasing the slot, recording
the breaker's success, the child's stats and the audit row, exactly as the chain would.

Anything else escalates to the ordinary policy chain (`Hub.run_call`) as an asyncio task that
adopts the call already on the wire (`ToolCall.sent`): an error answer, a transient failure to
retry, a closed connection, the deadline passing, the client cancelling. From there the chain's
own code decides everything, as it would have from the start. The chain counts the call's time
from when the express path started it, and the deadline already set (and moved by progress).

Only the hub's default policy chain without rate limits runs here (a limiter may wait on Redis);
with custom policies, rate limits or `fast_calls: false`, every call takes the chain.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from hub.downstream.connection import Downstream
from hub.downstream.json_channel import Pending
from hub.policies.audit import with_request_id
from hub.policies.base import ToolCall, now
from hub.policies.breaker import CircuitBreaker
from hub.policies.bulkhead import Bulkhead
from hub.policies.retry import transient_result
from hub.wire import ToolResult, WireResult, strip_protocol_meta, wire_result

if TYPE_CHECKING:
    from hub.hub import Hub

logger = logging.getLogger("hub.calls")

Done = Callable[[ToolResult], None]
"""Receives the finished result (request id in `_meta`), in the callback that read the answer."""
Escalate = Callable[[Coroutine[Any, Any, ToolResult]], asyncio.Task[Any]]
"""Runs the chain's coroutine as a task that answers the client as `Done` would, and returns it."""


class ExpressCall:
    """One call sent by the express path: finished in a callback, or escalated to the chain."""

    __slots__ = ("_breaker", "_bulkhead", "_done", "_downstream", "_escalate", "_hub", "_watch", "call", "pending", "task")

    def __init__(self, hub: Hub, call: ToolCall, downstream: Downstream, breaker: CircuitBreaker, bulkhead: Bulkhead,
                 done: Done, escalate: Escalate, watch: DeadlineWatch) -> None:
        self._hub = hub
        self.call = call
        self._downstream = downstream
        self._breaker = breaker
        self._bulkhead = bulkhead
        self._done = done
        self._escalate = escalate
        self._watch = watch
        self.pending: Pending | None = None
        self.task: asyncio.Task[Any] | None = None

    def send(self) -> bool:
        """Send the call downstream (holding the bulkhead slot the caller acquired) and start its
        deadline; False, nothing sent, if the child cannot take it at once."""
        call = self.call
        meta = self._downstream.caller.meta(call.attributes["caller"])  # who is calling, signed (hub.auth.caller_channel)
        pending = self._downstream.send_call_now(call.route.original, call.arguments, self._on_progress, self._on_answer, meta)
        if pending is None:
            return False
        self.pending = call.sent = pending
        self._downstream.stats.in_flight += 1
        call.attributes["attempt"] = 1
        call.idle_deadline_from(call.started_at)
        self._watch.add(self)
        return True

    def escalate(self) -> asyncio.Task[Any]:
        """Hand the call to the policy chain (idempotent); the task that now answers it."""
        if self.task is None:
            self._watch.discard(self)
            self.task = self._escalate(self._hub.run_call(self.call, validated=True, wire=True))
        return self.task

    async def _on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """The child reported progress: it is alive, so the idle deadline moves, and the caller hears
        it if it asked (as the deadline policy's own listener does once the chain has the call)."""
        call = self.call  # escalated but not yet adopted by the chain: it starts from this deadline
        call.idle_deadline_from(now())  # later: the watch's timer can stay
        if call.progress is not None:
            await call.progress(progress, total, message)

    def _on_answer(self, message: dict[str, Any] | None) -> None:
        if self.task is not None:
            return  # the chain has the call and reads the answer itself
        try:
            result = _plain_result(message)
        except Exception:  # boundary: whatever is odd about the answer, the chain reports it
            result = None
        if result is None:
            self.escalate()
            return
        try:
            self._finish(result)
        except Exception:  # boundary: this runs in the child's pipe reader, which must go on
            logger.exception("finishing %s failed inside the hub", self.call.route.exposed)

    def _finish(self, result: WireResult) -> None:
        """What the chain does for a plain answer: forwarding step, bulkhead, breaker, (retry:
        nothing to retry), (deadline: met), audit, request id. The client is answered first; the
        rest is bookkeeping nobody waits for, and its order does not change what anyone sees."""
        assert self.pending is not None
        call = self.call
        elapsed = now() - call.started_at
        try:
            self._done(with_request_id(result, call.attributes["request_id"]))
        finally:
            self._watch.discard(self)
            self._downstream.forget(self.pending)
            self.pending.on_answer = self.pending.progress = None  # no cycle back to us: freed at once
            call.sent = None
            self._downstream.stats.finish(elapsed, False)
            self._bulkhead.slots.release()
            self._breaker.record(True)
            self._hub.auditor.observe_result(call, result, elapsed)


class DeadlineWatch:
    """One timer for the deadlines of every express call in flight. A timer per call would cost a
    heap push each, and leave a cancelled handle in the loop's heap for the whole timeout (every
    later push then compares against it). The timer is set for the earliest deadline; when it
    fires, the calls past theirs escalate (the chain reports the timeout) and it is set again."""

    def __init__(self) -> None:
        self._calls: dict[ExpressCall, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._when = math.inf

    def add(self, express: ExpressCall) -> None:
        self._calls[express] = None
        if express.call.deadline_at < self._when:
            self._arm(express.call.deadline_at)

    def discard(self, express: ExpressCall) -> None:
        self._calls.pop(express, None)  # the timer stays: when it fires, it finds what is left

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._when = when
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._when = None, math.inf
        current = now()
        for express in [e for e in self._calls if e.call.deadline_at <= current]:
            express.escalate()  # which discards it
        if self._calls:
            self._arm(min(e.call.deadline_at for e in self._calls))


def _plain_result(message: dict[str, Any] | None) -> WireResult | None:
    """The answer's result if the chain would pass it straight through: a complete result that is
    not a transient failure (the retry policy's business). None for anything else."""
    if message is None or "error" in message:
        return None
    result = strip_protocol_meta(wire_result(message.get("result")))
    assert isinstance(result, WireResult)
    if transient_result(result)[0]:
        return None
    return result
