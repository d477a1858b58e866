"""`hub.policies.bulkhead` alone: a full queue is the hub's refusal, at once; a queued call waits for a slot."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from hub.errors import HubRefusal
from hub.policies import BulkheadPolicy, ToolCall
from tests.policy_support import make_call, ok_result

pytestmark = pytest.mark.anyio


class Gate:
    """A forwarder whose calls wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.entered = 0

    async def __call__(self, call: ToolCall) -> Any:
        self.entered += 1
        await self.open.wait()
        return ok_result()


def with_deadline(timeout_s: float) -> ToolCall:
    call = make_call(timeout_s=timeout_s)
    call.idle_deadline_from(call.started_at)
    return call


async def test_a_full_queue_refuses_at_once_and_a_queued_call_gets_the_freed_slot() -> None:
    bulkheads = BulkheadPolicy(lambda server: (1, 1))
    gate, results = Gate(), []

    async def run() -> None:
        results.append(await bulkheads(with_deadline(30), gate))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(10):
            while gate.entered == 0:
                await anyio.sleep(0)
        tg.start_soon(run)  # queued
        with anyio.fail_after(10):
            while bulkheads.bulkhead("s").waiting == 0:
                await anyio.sleep(0)
        with pytest.raises(HubRefusal) as refused:
            await bulkheads(with_deadline(30), gate)
        assert refused.value.body.details == {"server": "s", "reason": "saturated"}
        assert refused.value.body.retry_after_s and gate.entered == 1
        gate.open.set()
    assert len(results) == 2 and gate.entered == 2 and bulkheads.bulkhead("s").busy == 0


async def test_a_queued_call_gives_up_before_its_deadline_with_a_refusal() -> None:
    bulkheads = BulkheadPolicy(lambda server: (1, 5))
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkheads, with_deadline(30), gate)
        with anyio.fail_after(10):
            while gate.entered == 0:
                await anyio.sleep(0)
        with pytest.raises(HubRefusal) as refused:
            await bulkheads(with_deadline(0.2), gate)
        assert "no slot freed up before the deadline" in refused.value.body.message
        gate.open.set()
