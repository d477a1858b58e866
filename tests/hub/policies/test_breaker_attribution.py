"""One caller cannot open a server's breaker for everyone, nor hold it open (outside reviews: one
principal's slow ingests, timing out, paused the memory server for all; two colluding principals
opened it; a failing caller, taken as the half-open probe each time, kept it open).

A failure is its caller's own when another caller's latest call succeeded within the window: it
pauses that caller alone once enough of its calls failed in a row. A server one caller uses, or that
works for nobody, opens as before. The probe is never a caller whose own calls just failed (unless
that is everyone), and a probe that succeeds starts the window afresh. On an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import error_body

from hub.auth.principal import Principal
from hub.policies import BreakerPolicy, DeadlinePolicy
from hub.errors import HubToolError
from hub.policies.breaker import KEPT_CALLERS, PROBE, WIRE_S
from hub.settings import BreakerSettings
from tests.policy_support import ManualClock, Script, code_of, lost, make_call, ok_result, run_call

pytestmark = pytest.mark.anyio


def policy(clock: ManualClock) -> BreakerPolicy:
    settings = BreakerSettings(failure_threshold=3, cooldown_s=10.0, min_calls=100, window_s=30.0)
    return BreakerPolicy(lambda server: settings, clock=clock)


def call_of(who: str) -> Any:
    """A call made by principal `who`."""
    made = make_call()
    made.attributes["caller"] = Principal(who, ("*",), "api_key", f"key-{who}")
    return made


async def call(breakers: BreakerPolicy, who: str, outcome: Any) -> Any:
    """One call of `who` through the breaker, playing `outcome` if it reaches the server."""
    return await run_call(call_of(who), DeadlinePolicy(), breakers, forwarder=Script(outcome))


async def opened_by_bob_then_a_clean_probe_cancelled(clock: ManualClock, prober: str) -> BreakerPolicy:
    """bob's failures open the breaker; `prober`, whose calls did not fail, is let through as the
    probe at once and that probe ends cancelled (no verdict)."""
    from hub.calls.call import Outcome
    from hub.policies.breaker import CLEAN_PROBE

    breakers = policy(clock)
    for _ in range(3):
        await call(breakers, "bob", lost())
    probe = call_of(prober)
    permit = breakers.admit(probe)
    assert permit is CLEAN_PROBE and breakers.breaker("s").state == "half_open"
    breakers.settle(probe, permit, Outcome(cancelled=True))  # type: ignore[arg-type]
    return breakers


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
    refused = (await call(breakers, "bob", AssertionError("never reaches the server"))).structured_content
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
    for who in ("alice", "bob"):
        refused = await call(breakers, who, AssertionError("never reaches the server"))
        assert error_body(refused)["details"]["reason"] == "breaker_open"
    # carol's calls did not fail: hers is the probe at once (one at a time), and finds it still failing
    assert code_of(await call(breakers, "carol", lost())) == "unavailable"
    assert breakers.breaker("s").state == "open"
    refused = await call(breakers, "carol", AssertionError("never reaches the server"))
    assert error_body(refused)["details"]["reason"] == "breaker_open"


async def test_a_server_that_works_for_nobody_opens_once_the_last_success_is_out_of_the_window() -> None:
    """Outside review: a dead server's breaker stayed closed for 5 minutes after anyone's last
    success, each caller sitting through its own timeouts and told that others' calls succeed."""
    clock = ManualClock()
    breakers = policy(clock)
    await call(breakers, "alice", ok_result())
    clock.advance(31)  # the window is 30 s
    for _ in range(3):
        await call(breakers, "bob", lost())
    assert breakers.breaker("s").state == "open"


async def test_two_colluding_callers_are_each_paused_while_the_server_works_for_others() -> None:
    """Outside review: two principals failing together opened the breaker for everyone."""
    breakers = policy(ManualClock())
    await call(breakers, "alice", ok_result())
    for _ in range(3):
        await call(breakers, "bob", lost())
        await call(breakers, "mallory", lost())
    assert breakers.breaker("s").state == "closed"
    assert set(breakers.breaker("s").paused) == {("api_key", "bob"), ("api_key", "mallory")}
    assert not (await call(breakers, "alice", ok_result())).is_error


async def test_a_failing_caller_never_holds_the_breaker_open_for_others() -> None:
    """Outside reviews: once open, the call of a caller whose calls kept failing was the half-open
    probe after each cool-down and reopened the breaker; after another caller's probe closed it, a
    burst of the failing caller's reopened it at once. Now a caller whose calls did not fail is let
    through as the probe at once, its success is remembered, and the failing caller is paused alone."""
    clock = ManualClock()
    breakers = policy(clock)
    for _ in range(3):  # bob alone, nobody else in the window: the server's failures, open for everyone
        await call(breakers, "bob", lost())
    server = breakers.breaker("s")
    assert server.state == "open"
    clock.advance(10)  # the cool-down is over: bob's next call is the probe after it, fails, and reopens it
    assert code_of(await call(breakers, "bob", lost())) == "unavailable" and server.state == "open"
    assert not (await call(breakers, "alice", ok_result())).is_error, "alice's call is the probe, at once"
    assert server.state == "closed"
    for _ in range(3):  # a whole burst: his own failures now, alice's success being remembered
        assert code_of(await call(breakers, "bob", lost())) == "unavailable"
    assert server.state == "closed" and server.paused_for(("api_key", "bob")) > 0
    assert not (await call(breakers, "alice", ok_result())).is_error


async def test_a_clean_caller_is_the_probe_at_once_even_during_the_cool_down() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    for _ in range(3):
        await call(breakers, "bob", lost())
    assert breakers.breaker("s").state == "open" and breakers.breaker("s").retry_after() == 10
    assert not (await call(breakers, "alice", ok_result())).is_error
    assert breakers.breaker("s").state == "closed"


async def test_when_every_caller_just_failed_any_of_them_may_probe() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    for _ in range(2):
        await call(breakers, "bob", lost())
    await call(breakers, "carol", lost())
    assert breakers.breaker("s").state == "open"
    clock.advance(10)
    assert not (await call(breakers, "bob", ok_result())).is_error
    assert breakers.breaker("s").state == "closed"


@pytest.mark.parametrize(("wire_s", "counts"), [(0.5, False), (5.0, True)], ids=["deadline-spent-queueing", "full-timeout"])
async def test_a_timeout_counts_only_when_the_server_had_the_whole_timeout(wire_s: float, counts: bool) -> None:
    """Outside review: calls whose deadline was spent waiting for a bulkhead slot timed out soon
    after they were sent, and opened a healthy server's breaker."""
    from hub.calls.call import Outcome

    breakers = policy(ManualClock())
    for _ in range(3):
        late = make_call(timeout_s=5.0)
        late.attributes[WIRE_S] = wire_s
        permit = breakers.admit(late)
        assert permit is not PROBE
        breakers.settle(late, permit, Outcome(error=HubToolError("timeout", "no answer within 5s")))  # type: ignore[arg-type]
    assert breakers.breaker("s").state == ("open" if counts else "closed")


async def test_the_callers_remembered_per_server_stay_bounded() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    for index in range(KEPT_CALLERS + 40):
        await call(breakers, f"user{index}", ok_result() if index % 2 else lost())
        clock.advance(0.01)
    server = breakers.breaker("s")
    assert len(server.latest) <= KEPT_CALLERS and len(server.caller_failures) <= KEPT_CALLERS


async def test_an_ordinary_call_ending_while_the_breaker_is_not_closed_moves_nothing() -> None:
    """Second outside review (from reading the code): any verdict arriving in half-open was taken
    as the probe's, so a call admitted before the breaker opened could close or reopen it."""
    from hub.calls.call import Outcome

    clock = ManualClock()
    breakers = policy(clock)
    early = call_of("dave")
    early_permit = breakers.admit(early)  # admitted while closed; its answer comes late
    for _ in range(3):
        await call(breakers, "bob", lost())
    server = breakers.breaker("s")
    clock.advance(10)
    probe = call_of("bob")
    probe_permit = breakers.admit(probe)
    assert probe_permit is PROBE and server.state == "half_open"
    breakers.settle(early, early_permit, Outcome(result=ok_result()))  # type: ignore[arg-type]
    assert server.state == "half_open", "dave's old call is not the probe"
    breakers.settle(probe, probe_permit, Outcome(error=lost()))  # type: ignore[arg-type]
    assert server.state == "open"


async def test_a_cancelled_clean_probe_does_not_open_the_gate_early_for_a_suspect() -> None:
    clock = ManualClock()
    breakers = await opened_by_bob_then_a_clean_probe_cancelled(clock, "alice")
    refused = await call(breakers, "bob", AssertionError("not before the cool-down"))
    assert error_body(refused)["details"]["reason"] == "breaker_open"
    clock.advance(10)
    assert not (await call(breakers, "bob", ok_result())).is_error  # after it, the gated probe is anyone's
    assert breakers.breaker("s").state == "closed"


async def test_cancelling_ones_own_probes_does_not_hold_the_breaker_half_open() -> None:
    """Final re-check (A1): a caller whose probes were cancelled got no verdict, stayed clean and took
    the probe slot again at once, so alice got 0 of 39 calls through a healthy server."""
    breakers = await opened_by_bob_then_a_clean_probe_cancelled(ManualClock(), "mallory")
    again = await call(breakers, "mallory", AssertionError("mallory waits like a caller whose probe failed"))
    assert error_body(again)["details"]["reason"] == "breaker_open"
    assert not (await call(breakers, "alice", ok_result())).is_error, "the probe slot is alice's"
    assert breakers.breaker("s").state == "closed"


async def test_an_old_calls_success_while_open_does_not_make_its_caller_clean() -> None:
    from hub.calls.call import Outcome

    clock = ManualClock()
    breakers = policy(clock)
    early = call_of("bob")
    early_permit = breakers.admit(early)
    for _ in range(3):
        await call(breakers, "bob", lost())
    breakers.settle(early, early_permit, Outcome(result=ok_result()))  # type: ignore[arg-type]
    refused = await call(breakers, "bob", AssertionError("bob is no clean probe"))
    assert error_body(refused)["details"]["reason"] == "breaker_open"
