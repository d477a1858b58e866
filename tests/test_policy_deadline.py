"""`hub.policies.deadline` alone: the cancel scope follows the call's deadline, and a probe's restart moves it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from hub.errors import HubToolError
from hub.policies import ToolCall, deadline_policy, now
from tests.policy_support import make_call, ok_result

pytestmark = pytest.mark.anyio


async def test_restart_deadline_gives_a_full_deadline_from_now_and_moves_the_running_scope() -> None:
    call = make_call(timeout_s=1.0, max_timeout_s=2.0)
    call.started_at -= 0.9  # the call already spent 0.9 s of its 1 s (waiting for a retry, say)
    seen: dict[str, float] = {}

    async def forward(call: ToolCall) -> Any:
        seen["before"] = anyio.current_effective_deadline() - now()
        call.restart_deadline()
        seen["after"] = anyio.current_effective_deadline() - now()
        seen["hard"] = call.hard_deadline - now()
        return ok_result()

    await deadline_policy(call, forward)
    assert seen["before"] < 0.2 and seen["after"] > 0.9 and seen["hard"] > 1.9, seen
    assert call.deadline_scope is None, "the scope is not kept once the call is over"


async def test_the_deadline_cancels_and_reports_timeout() -> None:
    async def forward(call: ToolCall) -> Any:
        await anyio.sleep_forever()

    with pytest.raises(HubToolError) as timed_out:
        await deadline_policy(make_call(timeout_s=0.05, max_timeout_s=0.05), forward)
    assert timed_out.value.body.code == "timeout" and "hard limit" in timed_out.value.body.message
