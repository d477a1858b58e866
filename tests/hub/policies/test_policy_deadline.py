"""`hub.policies.deadline` with the awaiting driver: the cancel scope follows the call's deadline,
progress moves it (never past the hard limit), and a probe's restart moves it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from hub.policies import DeadlinePolicy, ToolCall, now
from tests.policy_support import Script, code_of, make_call, ok_result, run_call

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

    await run_call(call, DeadlinePolicy(), forwarder=Script(forward))
    assert seen["before"] < 0.2 and seen["after"] > 0.9 and seen["hard"] > 1.9, seen
    assert call.deadline_scope is None, "the scope is not kept once the call is over"


async def test_progress_moves_the_idle_deadline_but_never_past_the_hard_one() -> None:
    call = make_call(timeout_s=1.0, max_timeout_s=1.5)
    call.started_at -= 0.9
    seen: list[float] = []

    async def forward(call: ToolCall) -> Any:
        seen.append(anyio.current_effective_deadline() - now())
        await call.on_progress(1, None, None)
        seen.append(anyio.current_effective_deadline() - now())
        return ok_result()

    await run_call(call, DeadlinePolicy(), forwarder=Script(forward))
    assert seen[0] < 0.2 and 0.5 < seen[1] <= 0.6, seen


async def test_the_deadline_cancels_and_reports_timeout() -> None:
    async def forward(call: ToolCall) -> Any:
        await anyio.sleep_forever()

    result = await run_call(make_call(timeout_s=0.05, max_timeout_s=0.05), DeadlinePolicy(), forwarder=Script(forward))
    assert code_of(result) == "timeout" and "hard limit" in result.content[0].text
