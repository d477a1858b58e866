"""`hub.policies.retry` alone: which failures are retried, how long it waits, and what it never waits out."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

from hub.errors import HubRefusal, HubToolError
from hub.policies import BreakerPolicy, RetryPolicy, ToolCall, compose
from hub.settings import BreakerSettings, RetrySettings
from tests.policy_support import ManualClock, down, lost, make_call, ok_result

pytestmark = pytest.mark.anyio


class Script:
    """A forwarder that plays its outcomes in order and counts the attempts it saw."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.attempts = 0

    async def __call__(self, call: ToolCall) -> Any:
        self.attempts += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Jitter:
    def __init__(self) -> None:
        self.draws = 0

    def __call__(self) -> float:
        self.draws += 1
        return 0.0  # no backoff: these tests never wait


def retry(jitter: Jitter, attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(lambda server: RetrySettings(max_attempts=attempts, base_delay_s=0.01), jitter=jitter)


def rate_limited(after_s: float) -> types.CallToolResult:
    body = {"code": "rate_limited", "message": "slow down", "retryable": True, "retry_after_s": after_s}
    return types.CallToolResult(content=[types.TextContent(type="text", text="slow down")], structured_content=body,
                                is_error=True)


async def test_a_refusal_of_the_hub_is_never_retried() -> None:
    jitter, script = Jitter(), Script(down())
    with pytest.raises(HubRefusal):
        await retry(jitter)(make_call(), script)
    assert script.attempts == 1 and jitter.draws == 0


async def test_a_lost_connection_is_retried_for_a_safe_call_until_attempts_run_out() -> None:
    jitter, script = Jitter(), Script(lost(), lost(), ok_result())
    assert await retry(jitter)(make_call(), script) == ok_result()
    script = Script(lost(), lost(), lost())
    with pytest.raises(HubToolError) as failed:
        await retry(jitter)(make_call(), script)
    assert script.attempts == 3 and failed.value.body.code == "unavailable"


async def test_a_write_without_an_idempotency_key_is_tried_once() -> None:
    script = Script(lost())
    with pytest.raises(HubToolError):
        await retry(Jitter())(make_call(read_only=False), script)
    assert script.attempts == 1
    keyed = Script(lost(), ok_result())
    await retry(Jitter())(make_call(read_only=False, arguments={"idempotency_key": "k"}), keyed)
    assert keyed.attempts == 2


async def test_a_retry_after_past_the_deadline_gives_up_at_once_with_the_servers_answer() -> None:
    script = Script(rate_limited(after_s=60.0))
    call = make_call(timeout_s=5.0)
    call.idle_deadline_from(call.started_at)
    result = await retry(Jitter())(call, script)
    assert result.structured_content["code"] == "rate_limited" and script.attempts == 1


async def test_once_a_failure_opened_the_breaker_the_next_attempt_is_refused_and_returned_at_once() -> None:
    breakers = BreakerPolicy(lambda server: BreakerSettings(failure_threshold=1, cooldown_s=10), clock=ManualClock())
    jitter, script = Jitter(), Script(lost(), ok_result())
    chain = compose([retry(jitter, attempts=5), breakers], script)
    with pytest.raises(HubRefusal) as refused:
        await chain(make_call())
    assert script.attempts == 1 and jitter.draws == 1, "one backoff after the real failure, none after the refusal"
    assert refused.value.body.retry_after_s == 10.0
