"""`hub.policies.retry` on an injected clock and sleep: which failures are retried, how long it
waits (a provider's `retry_after_s` included), and what it never waits out."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

from tests.conftest import error_body

from hub.policies import BreakerPolicy, DeadlinePolicy, RetryPolicy
from hub.settings import BreakerSettings, RetrySettings
from tests.policy_support import ManualClock, Script, code_of, down, lost, make_call, ok_result, run_call

pytestmark = pytest.mark.anyio


class Waits:
    """Jitter and sleep for the retry policy: the jitter is fixed, and sleeping moves the clock."""

    def __init__(self, clock: ManualClock, jitter: float = 0.0) -> None:
        self.clock = clock
        self.jitter = jitter
        self.draws = 0
        self.slept: list[float] = []

    def draw(self) -> float:
        self.draws += 1
        return self.jitter

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)


def retry(waits: Waits, attempts: int = 3, base: float = 0.2, cap: float = 5.0) -> RetryPolicy:
    return RetryPolicy(lambda server: RetrySettings(max_attempts=attempts, base_delay_s=base, max_delay_s=cap),
                       jitter=waits.draw, clock=waits.clock, sleep=waits.sleep)


def rate_limited(after_s: float | None, code: str = "rate_limited") -> types.CallToolResult:
    """What a domain server answers at once on a provider 429 (or 5xx: `unavailable`)."""
    body: dict[str, Any] = {"code": code, "message": "slow down", "retryable": True}
    if after_s is not None:
        body["retry_after_s"] = after_s
    return types.CallToolResult(content=[types.TextContent(type="text", text="slow down")], structured_content=body,
                                is_error=True)


async def call_with(waits: Waits, script: Script, read_only: bool = True, timeout_s: float = 30.0, **kw: Any) -> Any:
    call = make_call(read_only=read_only, timeout_s=timeout_s, max_timeout_s=timeout_s, arguments=kw.pop("arguments", None),
                     keyed=kw.pop("keyed", False))
    call.started_at = waits.clock()  # the call's deadline counts on the same clock as the retry's
    return await run_call(call, DeadlinePolicy(), *kw.pop("policies", ()), forwarder=script, retry=retry(waits, **kw))


async def test_a_refusal_of_the_hub_is_never_retried() -> None:
    waits, script = Waits(ManualClock()), Script(down())
    result = await call_with(waits, script)
    assert code_of(result) == "unavailable" and script.attempts == 1 and waits.draws == 0 and waits.slept == []


async def test_a_lost_connection_is_retried_for_a_safe_call_until_attempts_run_out() -> None:
    waits = Waits(ManualClock(), jitter=1.0)
    assert await call_with(waits, Script(lost(), lost(), ok_result())) == ok_result().model_copy(
        update={"meta": {"mcp-hub/request_id": "test"}})
    assert waits.slept == [0.2, 0.4], "exponential backoff (jitter drawn at its top)"
    script = Script(lost(), lost(), lost())
    assert code_of(await call_with(Waits(ManualClock()), script)) == "unavailable" and script.attempts == 3


async def test_a_write_without_an_idempotency_key_is_tried_once() -> None:
    script = Script(lost())
    await call_with(Waits(ManualClock()), script, read_only=False)
    assert script.attempts == 1
    keyed = Script(lost(), ok_result())
    await call_with(Waits(ManualClock()), keyed, read_only=False, arguments={"idempotency_key": "k"}, keyed=True)
    assert keyed.attempts == 2
    # Outside review (faults round 7): a key the tool never declared proves nothing; it was retried.
    undeclared = Script(lost(), ok_result())
    await call_with(Waits(ManualClock()), undeclared, read_only=False, arguments={"idempotency_key": "k"})
    assert undeclared.attempts == 1


def test_a_route_is_keyed_only_when_its_schema_declares_the_key() -> None:
    from hub.catalog.catalog import make_route
    from hub.config import parse_config

    config = parse_config({"mcpServers": {"s": {"command": "x"}}}).servers[0]
    declared = types.Tool(name="t", input_schema={"type": "object", "properties": {"idempotency_key": {"type": "string"}}})
    assert make_route(config, declared, "s__t").keyed
    for schema in ({"type": "object"}, {"type": "object", "properties": {"key": {}}}, {"type": "object", "properties": []}):
        assert not make_route(config, types.Tool(name="t", input_schema=schema), "s__t").keyed


async def test_a_providers_retry_after_is_waited_with_a_capped_jitter_then_the_call_succeeds() -> None:
    waits = Waits(ManualClock(), jitter=1.0)
    script = Script(rate_limited(after_s=3.0), ok_result())
    result = await call_with(waits, script, base=0.2)
    assert result.is_error is not True and script.attempts == 2
    assert waits.slept == [pytest.approx(3.2)], "retry_after_s plus at most base_delay_s of jitter"
    script = Script(rate_limited(after_s=None, code="unavailable"), ok_result())  # a provider 5xx
    waits = Waits(ManualClock(), jitter=0.5)
    assert (await call_with(waits, script)).is_error is not True and waits.slept == [pytest.approx(0.1)]


async def test_a_retry_after_past_the_deadline_gives_up_at_once_with_the_servers_answer() -> None:
    waits, script = Waits(ManualClock()), Script(rate_limited(after_s=60.0))
    result = await call_with(waits, script, timeout_s=5.0)
    assert code_of(result) == "rate_limited" and error_body(result)["retry_after_s"] == 60.0
    assert script.attempts == 1 and waits.slept == []


async def test_once_a_failure_opened_the_breaker_the_next_attempt_is_refused_and_returned_at_once() -> None:
    clock = ManualClock()
    breakers = BreakerPolicy(lambda server: BreakerSettings(failure_threshold=1, cooldown_s=10), clock=clock)
    waits, script = Waits(clock), Script(lost(), ok_result())
    result = await call_with(waits, script, attempts=5, policies=[breakers])
    assert script.attempts == 1 and len(waits.slept) == 1, "one backoff after the real failure, none after the refusal"
    assert error_body(result)["details"]["reason"] == "breaker_open"
    assert error_body(result)["retry_after_s"] == 10.0
