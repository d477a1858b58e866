"""`hub.policies.bulkhead` alone: a free slot admits at once, a full queue is the hub's refusal at
once, a queued call waits for a freed slot or gives up before its deadline; the slot comes back."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest

from tests.conftest import error_body

from hub.policies import GRANTED, MUST_WAIT, BulkheadPolicy, DeadlinePolicy, ToolCall
from tests.policy_support import Script, code_of, make_call, ok_result, run_call

pytestmark = pytest.mark.anyio


class Gate:
    """A forwarder step whose calls wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.entered = 0

    async def __call__(self, call: ToolCall) -> Any:
        self.entered += 1
        await self.open.wait()
        return ok_result()


async def test_admission_is_synchronous_and_says_when_it_must_wait() -> None:
    bulkheads = BulkheadPolicy(lambda server: (1, 0))
    first, second = make_call(), make_call()
    assert bulkheads.admit(first) is GRANTED and bulkheads.bulkhead("s").busy == 1
    refused = bulkheads.admit(second)  # queue of 0: refused, not queued
    assert refused.body.details == {"server": "s", "reason": "saturated"} and refused.body.retry_after_s
    bulkheads.settle(first, GRANTED, None)  # type: ignore[arg-type]
    assert bulkheads.bulkhead("s").busy == 0
    queueing = BulkheadPolicy(lambda server: (1, 1))
    assert queueing.admit(first) is GRANTED and queueing.admit(second) is MUST_WAIT
    assert queueing.bulkhead("s").busy == 1 and queueing.bulkhead("s").waiting == 0, "MUST_WAIT changed nothing"


async def test_a_full_queue_refuses_at_once_and_a_queued_call_gets_the_freed_slot() -> None:
    bulkheads = BulkheadPolicy(lambda server: (1, 1))
    gate, results = Gate(), []

    async def run() -> None:
        results.append(await run_call(make_call(timeout_s=30), DeadlinePolicy(), bulkheads, forwarder=Script(gate)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(10):
            while gate.entered == 0:
                await anyio.sleep(0)
        tg.start_soon(run)  # queued
        with anyio.fail_after(10):
            while bulkheads.bulkhead("s").waiting == 0:
                await anyio.sleep(0)
        refused = await run_call(make_call(timeout_s=30), DeadlinePolicy(), bulkheads, forwarder=Script(gate))
        assert error_body(refused)["details"] == {"server": "s", "reason": "saturated"}
        assert error_body(refused)["retry_after_s"] and gate.entered == 1
        gate.open.set()
    assert len(results) == 2 and not any(r.is_error for r in results) and gate.entered == 2 and bulkheads.bulkhead("s").busy == 0


@pytest.mark.parametrize("margin_s", [None, -5.0], ids=["queue-timer-first", "deadline-first"])
async def test_a_queued_call_gives_up_before_its_deadline_with_a_refusal(monkeypatch: pytest.MonkeyPatch,
                                                                         margin_s: float | None) -> None:
    """The queue gives up shortly before the call's deadline with the hub's refusal. On a late loop
    the deadline can fire first (made certain by pushing the queue's timer past it): the call never
    went out, so it is still `saturated`, not a `timeout`, and a refusal — counted by no breaker."""
    from hub.policies import bulkhead as bulkhead_module

    if margin_s is not None:
        monkeypatch.setattr(bulkhead_module, "DEADLINE_MARGIN_S", margin_s)
    bulkheads = BulkheadPolicy(lambda server: (1, 5))
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(run_call, make_call(timeout_s=30), DeadlinePolicy(), bulkheads, forwarder=Script(gate)))
        with anyio.fail_after(10):
            while gate.entered == 0:
                await anyio.sleep(0)
        queued = make_call(timeout_s=0.2)
        result = await run_call(queued, DeadlinePolicy(), bulkheads, forwarder=Script(gate))
        assert code_of(result) == "unavailable" and "no slot freed up before the deadline" in result.content[0].text
        assert queued.outcome is not None and queued.outcome.refused and gate.entered == 1
        gate.open.set()
    assert bulkheads.bulkhead("s").busy == 0 and bulkheads.bulkhead("s").waiting == 0
