"""`hub.policies.breaker` alone, on an injected clock: no test here waits for a cool-down."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.policies import BreakerPolicy, CircuitBreaker, DeadlinePolicy, RetryPolicy, ToolCall, now
from hub.settings import BreakerSettings, RetrySettings
from tests.policy_support import ManualClock, Script, code_of, down, lost, make_call, ok_result, run_call

pytestmark = pytest.mark.anyio


def breaker(clock: ManualClock, **overrides: Any) -> CircuitBreaker:
    values: dict[str, Any] = {"failure_threshold": 3, "cooldown_s": 10.0, "min_calls": 100} | overrides
    return CircuitBreaker("s", BreakerSettings(**values), clock)


def test_opens_after_consecutive_failures_and_refuses_until_the_cooldown_ends() -> None:
    clock = ManualClock()
    b = breaker(clock)
    for _ in range(2):
        assert b.admit()
        b.record(False)
    assert b.state == "closed"
    b.record(True)  # a success in between resets the run
    for _ in range(3):
        assert b.admit()
        b.record(False)
    assert b.state == "open" and not b.admit() and b.retry_after() == 10.0
    clock.advance(9.5)
    assert not b.admit() and b.retry_after() == pytest.approx(0.5)
    clock.advance(0.5)
    assert b.admit() and b.state == "half_open"
    assert not b.admit(), "one probe at a time"
    b.record(True)
    assert b.state == "closed" and b.transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = ManualClock()
    b = breaker(clock, failure_threshold=1)
    b.record(False)
    clock.advance(10)
    assert b.admit()
    clock.advance(3)
    b.record(False)
    assert b.state == "open" and b.retry_after() == 10.0


def test_failure_rate_opens_and_old_calls_slide_out_of_the_window() -> None:
    clock = ManualClock()
    b = breaker(clock, failure_threshold=100, min_calls=4, failure_rate=0.6, window_s=30)
    for outcome in (False, False, False, True):
        b.record(outcome)
    clock.advance(31)  # those four are out of the window now
    for outcome in (True, False, False):
        b.record(outcome)
    assert b.state == "closed", "3 recent calls are fewer than min_calls; the old failures no longer count"
    b.record(False)
    assert b.state == "open", "3 of the 4 recent calls failed"


def test_release_frees_the_probe_slot_without_a_verdict() -> None:
    clock = ManualClock()
    b = breaker(clock, failure_threshold=1)
    b.record(False)
    clock.advance(10)
    assert b.admit()
    b.release()
    assert b.state == "half_open" and b.admit()


def policy(clock: ManualClock, **overrides: Any) -> BreakerPolicy:
    values: dict[str, Any] = {"failure_threshold": 1, "cooldown_s": 10.0} | overrides
    return BreakerPolicy(lambda server: BreakerSettings(**values), clock=clock)


async def attempt(breakers: BreakerPolicy, *outcomes: Any, timeout_s: float = 5.0) -> Any:
    """One call through the breaker alone (deadline set), each attempt playing the next outcome."""
    return await run_call(make_call(timeout_s=timeout_s), DeadlinePolicy(), breakers, forwarder=Script(*outcomes))


async def test_refusals_from_further_in_never_count_but_a_lost_connection_does() -> None:
    breakers = policy(ManualClock())
    for _ in range(5):
        assert (await attempt(breakers, down())).structured_content["details"]["reason"] == "down"
    assert breakers.breaker("s").state == "closed" and breakers.breaker("s").consecutive_failures == 0
    assert code_of(await attempt(breakers, lost())) == "unavailable"
    assert breakers.breaker("s").state == "open"


async def test_an_open_breaker_refuses_with_the_cooldown_left_as_retry_after() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    await attempt(breakers, lost())
    clock.advance(7.5)
    never = Script(AssertionError("never reaches the server"))
    body = (await run_call(make_call(), DeadlinePolicy(), breakers, forwarder=never)).structured_content
    assert body["code"] == "unavailable" and body["retry_after_s"] == 2.5 and body["details"]["reason"] == "breaker_open"
    assert never.attempts == 0


async def test_a_probe_refused_further_in_lets_the_next_call_probe() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    await attempt(breakers, lost())
    clock.advance(10)
    await attempt(breakers, down())  # the probe found the server still down
    assert breakers.breaker("s").state == "half_open"
    await attempt(breakers, ok_result())
    assert breakers.breaker("s").state == "closed"


async def test_a_timeout_is_a_failure_and_a_cancel_by_the_caller_is_nothing() -> None:
    breakers = policy(ManualClock(), failure_threshold=2)

    async def hang(call: ToolCall) -> Any:
        await anyio.sleep_forever()

    # A timeout counts only when the server had the call for 90% of its deadline (`WHOLE_TIMEOUT`): with 10 ms,
    # a millisecond of the hub's own on a loaded machine made it count nothing (a fresh-clone CI run).
    assert code_of(await attempt(breakers, hang, timeout_s=1.0)) == "timeout"
    assert breakers.breaker("s").consecutive_failures == 1
    with anyio.move_on_after(0.01):
        await attempt(breakers, hang, timeout_s=30)
    assert breakers.breaker("s").consecutive_failures == 1 and breakers.breaker("s").state == "closed"


async def test_the_probe_gets_a_full_deadline_of_its_own() -> None:
    """Attempt 1 loses the connection (the breaker opens); the retry's backoff spends half the
    deadline, and the cool-down ends meanwhile; attempt 2 is the probe. It must be given the whole
    `timeout_s`, not the half left, or a slow-but-healthy server re-opens the breaker."""
    clock = ManualClock()
    breakers = policy(clock)

    def cooldown_passes_during_backoff() -> float:
        clock.advance(10)
        return 1.0  # the full backoff: base_delay_s

    retry = RetryPolicy(lambda server: RetrySettings(max_attempts=2, base_delay_s=0.5, max_delay_s=0.5),
                        jitter=cooldown_passes_during_backoff)
    left_for_probe: list[float] = []

    async def probe(call: ToolCall) -> Any:
        left_for_probe.append(anyio.current_effective_deadline() - now())
        return ok_result()

    call = make_call(timeout_s=1.0, max_timeout_s=1.0)
    await run_call(call, DeadlinePolicy(), breakers, forwarder=Script(lost(), probe), retry=retry)
    assert left_for_probe and left_for_probe[0] > 0.8, left_for_probe
    assert breakers.breaker("s").state == "closed"


OUTCOMES = st.lists(st.tuples(st.sampled_from(["ok", "fail", "refused"]), st.floats(0, 20)), max_size=40)


@settings(max_examples=50, deadline=None)
@given(OUTCOMES)
def test_refusals_interleaved_anywhere_change_nothing(outcomes: list[tuple[str, float]]) -> None:
    """After every real outcome the breaker is where it would be had the hub's refusals, mixed in
    anywhere, never happened (time passes the same either way)."""

    async def states_after_real_calls(steps: list[tuple[str, float]], refuse: bool) -> list[tuple[str, int]]:
        clock = ManualClock()
        breakers = policy(clock, failure_threshold=3, min_calls=5)
        seen: list[tuple[str, int]] = []
        for outcome, pause in steps:
            clock.advance(pause)
            if outcome == "refused" and not refuse:
                continue

            await attempt(breakers, ok_result() if outcome == "ok" else lost() if outcome == "fail" else down())
            if outcome != "refused":
                b = breakers.breaker("s")
                seen.append((b.state, b.consecutive_failures))
        return seen

    assert anyio.run(states_after_real_calls, outcomes, True) == anyio.run(states_after_real_calls, outcomes, False)
