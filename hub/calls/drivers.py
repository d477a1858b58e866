"""The two drivers of the call pipeline (`hub.calls.pipeline`): express and awaiting.

Most calls wait for nothing but their answer: every policy admits at once and the child's stdin
takes the line. For those, a task, a coroutine per policy and a cancel scope per call were most of
what the hub cost. The **express driver** (`Drivers.try_start`) runs every admission synchronously,
in the callback that read the client's line, and sends; the callback that reads the answer ends the
call (`Drivers.finish`): the client is answered first, then the attempt's and the call's permits
are settled. One timer serves every express deadline (`DeadlineWatch`).

The **awaiting driver** (`Drivers.run`) runs a call as a coroutine: it awaits what must be awaited
(a policy's `MUST_WAIT`, the answer, a retry's wait) under a cancel scope at the call's deadline.
A call the express driver cannot finish — a policy must wait, the child's stdin is backed up, the
answer is an error or a failure to retry, the connection closed, the deadline passed, the client
cancelled — escalates to it (`ExpressCall.escalate`): it resumes where the express driver stopped,
with the permits already held and the attempt already on the wire (`ToolCall.sent`).

Both drivers call the same pipeline methods; neither decides anything a policy decides.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio

from hub.calls.call import CANCELLED, Outcome, ToolCall, now
from hub.calls.pipeline import Pipeline
from hub.errors import HubToolError
from hub.policies.base import Policy
from hub.policies.deadline import timeout_error
from hub.relay.upstream import current_upstream
from hub.wire import ToolResult

logger = logging.getLogger("hub.calls")

Done = Callable[[ToolResult], None]
"""Receives the finished result (request id in `_meta`), in the callback that read the answer."""
Escalate = Callable[[Coroutine[Any, Any, ToolResult]], asyncio.Task[Any]]
"""Runs the awaiting driver's coroutine as a task that answers the client as `Done` would, and returns it."""

INTERNAL = Outcome(error=HubToolError("internal", "the hub failed on this call; see its log"))
"""What a call that ended in a bug of the hub is settled (and audited) as."""


class ExpressCall:
    """One call the express driver started: finished in a callback, or escalated to `run`."""

    __slots__ = ("_done", "_drivers", "_escalate", "call", "finished", "task")

    def __init__(self, drivers: Drivers, call: ToolCall, done: Done, escalate: Escalate) -> None:
        self._drivers = drivers
        self.call = call
        self._done = done
        self._escalate = escalate
        self.finished = False
        """Answered already (possibly before `try_start` returned: a refusal at admission)."""
        self.task: asyncio.Task[Any] | None = None

    def escalate(self) -> asyncio.Task[Any]:
        """Hand the call to the awaiting driver (idempotent); the task that now answers it."""
        if self.task is None:
            self._drivers.deadlines.discard(self)
            self.task = self._escalate(self._drivers.run(self.call))
        return self.task

    def on_answer(self, message: dict[str, Any] | None) -> None:
        """The child answered (None: the connection closed), in the callback that read it."""
        if self.task is not None:
            return  # the awaiting driver has the call and reads the answer itself
        call = self.call
        try:
            outcome = self._drivers.pipeline.answered_now(call, message)
        except Exception:  # boundary: whatever is odd about the answer, the awaiting driver reports it
            outcome = None
        if outcome is None:
            self.escalate()
            return
        pending, call.sent = call.sent, None
        self._drivers.deadlines.discard(self)
        pending.channel.forget(pending)
        pending.on_answer = pending.progress = None  # no cycle back to us: freed at once
        try:
            self._drivers.finish(self, outcome)
        except Exception:  # boundary: this runs in the child's pipe reader, which must go on
            logger.exception("finishing %s failed inside the hub", call.route.exposed)


def task_of(entry: asyncio.Task[Any] | ExpressCall) -> asyncio.Task[Any]:
    """The task answering a call a front holds in flight; an express call is handed to the awaiting
    driver to get one (never do that to a finished one: it would run again)."""
    return entry.escalate() if isinstance(entry, ExpressCall) else entry


class Drivers:
    """Both drivers over one pipeline. `tracing`: `hub.telemetry.CallTracing` (the awaiting driver
    opens its spans; the hub does not use the express driver while tracing is on)."""

    def __init__(self, pipeline: Pipeline, tracing: Any = None) -> None:
        self.pipeline = pipeline
        self.tracing = tracing
        self.deadlines = DeadlineWatch()

    # -- express -----------------------------------------------------------------------------

    def try_start(self, call: ToolCall, done: Done, escalate: Escalate) -> ExpressCall:
        """Admit `call` through every policy synchronously and send it. A refusal is answered at
        once (`done`, before this returns: see `ExpressCall.finished`); anything that must wait
        escalates to `run`, which resumes from there."""
        p = self.pipeline
        express = ExpressCall(self, call, done, escalate)
        verdict = p.admit(call, p.call_policies, call.held)
        if verdict is None:
            p.start_attempt(call)
            verdict = p.admit(call, p.attempt_policies, call.attempt_held)
            if verdict is None:
                pending = p.forwarder.send_now(call, express.on_answer)
                if pending is not None:
                    call.sent = pending
                    p.mark_sent(call)
                    self.deadlines.add(express)
                    return express
        if isinstance(verdict, HubToolError):
            self.finish(express, Outcome(error=verdict, refused=True))
        else:
            express.escalate()  # a policy must wait, or the child cannot take the line at once
        return express

    def finish(self, express: ExpressCall, outcome: Outcome) -> None:
        """Answer the client, then settle: the attempt (if one is open), then the call."""
        call, p = express.call, self.pipeline
        express.finished = True
        try:
            express._done(p.answer(call, outcome))  # noqa: SLF001 — the driver owns its calls
        finally:
            if call.attempt_open:
                p.end_attempt(call, outcome)
            p.end_call(call, outcome)

    # -- awaiting ----------------------------------------------------------------------------

    async def run(self, call: ToolCall) -> ToolResult:
        """Run (or resume) `call` to its answer, awaiting whatever must be awaited."""
        if self.tracing is None:
            return await self._run(call)
        with self.tracing.call_span(call):
            return await self._run(call)

    async def _run(self, call: ToolCall) -> ToolResult:
        p = self.pipeline
        outcome: Outcome | None = None
        try:
            refusal = await self._admit(call, p.call_policies, call.held)
            outcome = Outcome(error=refusal, refused=True) if refusal is not None else await self._attempts(call)
        except anyio.get_cancelled_exc_class():
            outcome = CANCELLED
            raise
        finally:
            p.end_call(call, outcome or INTERNAL)
        return p.answer(call, outcome)

    async def _attempts(self, call: ToolCall) -> Outcome:
        """The retry loop, under a cancel scope at the call's deadline (moved by progress)."""
        retry = self.pipeline.retry
        with anyio.CancelScope(deadline=call.deadline_at) as scope:
            call.deadline_scope = scope
            if (upstream := current_upstream.get()) is not None:
                upstream.call = call  # a relayed sampling/elicitation pauses this call's idle timer (`hub.relay`)
            try:
                while True:
                    outcome = await self._attempt(call)
                    delay = retry.after(call, outcome)
                    if delay is None:
                        return outcome
                    await retry.sleep(delay)
            finally:
                call.deadline_scope = None
        if call.unsent is not None:  # the deadline passed while the attempt still queued: the hub's refusal
            return Outcome(error=call.unsent, refused=True)
        return Outcome(error=timeout_error(call))

    async def _attempt(self, call: ToolCall) -> Outcome:
        if not call.attempt_open:
            self.pipeline.start_attempt(call)
        if self.tracing is None:
            return await self._attempt_body(call)
        with self.tracing.attempt_span(call) as mark:
            mark.outcome = await self._attempt_body(call)
            return mark.outcome

    async def _attempt_body(self, call: ToolCall) -> Outcome:
        p = self.pipeline
        outcome = CANCELLED
        try:
            if call.sent is not None:  # sent by the express driver: its answer is awaited here
                outcome = Outcome(result=await p.forwarder.adopt(call))
                return outcome
            refusal = await self._admit(call, p.attempt_policies, call.attempt_held)
            if refusal is not None:
                outcome = Outcome(error=refusal, refused=True)
                return outcome
            p.mark_sent(call)
            outcome = Outcome(result=await p.forwarder.forward(call))
        except anyio.get_cancelled_exc_class():
            if now() >= call.deadline_at:  # the deadline cancelled it: a timeout, unless it never went out
                outcome = Outcome(error=call.unsent, refused=True) if call.unsent else Outcome(error=timeout_error(call))
            raise
        except Exception as exc:  # what the transport raised: one table says what it means
            outcome = INTERNAL
            outcome = Outcome(error=await p.forwarder.error(call, exc))
        finally:
            p.end_attempt(call, outcome)
        return outcome

    async def _admit(self, call: ToolCall, policies: Sequence[Policy], held: list[tuple[Any, Any]]) -> HubToolError | None:
        """`Pipeline.admit`, awaiting each policy that must wait; the refusal, or None: all admitted."""
        while True:
            verdict = self.pipeline.admit(call, policies, held)
            if verdict is None or isinstance(verdict, HubToolError):
                return verdict
            try:
                if self.tracing is not None:
                    with self.tracing.wait_span(call, verdict) as mark:
                        permit = mark.outcome = await verdict.wait(call)
                else:
                    permit = await verdict.wait(call)
            except anyio.get_cancelled_exc_class():
                if now() >= call.deadline_at and (refusal := getattr(verdict, "refusal_at_deadline", None)):
                    call.unsent = refusal(call)
                raise
            if isinstance(permit, HubToolError):
                return permit
            held.append((verdict, permit))


class DeadlineWatch:
    """One timer for the deadlines of every express call in flight. A timer per call would cost a
    heap push each, and leave a cancelled handle in the loop's heap for the whole timeout (every
    later push then compares against it). The timer is set for the earliest deadline; when it
    fires, the calls past theirs escalate (the awaiting driver reports the timeout) and it is set again."""

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
