"""One caller cannot open a server's breaker for everyone with calls that fail because of what it
sends (outside review: one principal's slow ingests, timing out, paused the memory server for all).

A failure is its caller's own when another caller's latest call succeeded and no other caller's
latest call failed within the window: it pauses that caller alone once enough of its calls failed in
a row. A server one caller uses, or whose callers all fail, opens as before. On an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from hub.auth.principal import Principal
from hub.policies import BreakerPolicy, DeadlinePolicy
from hub.policies.breaker import KEPT_CALLERS, OTHERS_OK_HORIZON_S
from hub.settings import BreakerSettings
from tests.policy_support import ManualClock, Script, code_of, lost, make_call, ok_result, run_call

pytestmark = pytest.mark.anyio


def policy(clock: ManualClock) -> BreakerPolicy:
    settings = BreakerSettings(failure_threshold=3, cooldown_s=10.0, min_calls=100, window_s=30.0)
    return BreakerPolicy(lambda server: settings, clock=clock)


async def call(breakers: BreakerPolicy, who: str, outcome: Any) -> Any:
    """One call of `who` through the breaker, playing `outcome` if it reaches the server."""
    made = make_call()
    made.attributes["caller"] = Principal(who, ("*",), "api_key", f"key-{who}")
    return await run_call(made, DeadlinePolicy(), breakers, forwarder=Script(outcome))


async def test_one_caller_s_own_failures_pause_that_caller_and_not_the_server() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    assert not (await call(breakers, "alice", ok_result())).is_error
    for _ in range(3):
        assert code_of(await call(breakers, "bob", lost())) == "unavailable"
    server = breakers.breaker("s")
    assert server.state == "closed", "bob's failures did not pause the server for alice"
    assert not (await call(breakers, "alice", ok_result())).is_error
    paused = (await call(breakers, "bob", AssertionError("never reaches the server"))).structured_content
    assert paused["details"]["reason"] == "breaker_open_for_caller" and paused["retry_after_s"] == 10.0
    assert "your calls to server 's' keep failing" in paused["message"]
    clock.advance(10)
    assert not (await call(breakers, "bob", ok_result())).is_error, "the pause ended with the cool-down"
    assert code_of(await call(breakers, "bob", lost())) == "unavailable"
    assert not (await call(breakers, "bob", ok_result())).is_error, "one failure after a success pauses nobody"


async def test_a_server_one_caller_uses_opens_as_before() -> None:
    breakers = policy(ManualClock())
    for _ in range(3):
        await call(breakers, "bob", lost())
    assert breakers.breaker("s").state == "open"
    refused = (await call(breakers, "alice", ok_result())).structured_content
    assert refused["details"]["reason"] == "breaker_open"


async def test_a_server_failing_every_caller_opens_for_everyone() -> None:
    breakers = policy(ManualClock())
    await call(breakers, "alice", ok_result())
    for _ in range(3):
        await call(breakers, "bob", lost())  # bob's own, so far
    assert breakers.breaker("s").state == "closed"
    for _ in range(3):
        await call(breakers, "alice", lost())  # now the server fails alice too
    assert breakers.breaker("s").state == "open"
    assert (await call(breakers, "carol", ok_result())).structured_content["details"]["reason"] == "breaker_open"


async def test_an_old_success_of_another_caller_no_longer_makes_the_failures_one_caller_s() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    await call(breakers, "alice", ok_result())
    clock.advance(OTHERS_OK_HORIZON_S + 1)
    for _ in range(3):
        await call(breakers, "bob", lost())
    assert breakers.breaker("s").state == "open"


async def test_the_callers_remembered_per_server_stay_bounded() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    for index in range(KEPT_CALLERS + 40):
        await call(breakers, f"user{index}", ok_result() if index % 2 else lost())
        clock.advance(0.01)
    server = breakers.breaker("s")
    assert len(server.latest) <= KEPT_CALLERS and len(server.caller_failures) <= KEPT_CALLERS
