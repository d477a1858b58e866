"""Whose input crashed a shared server (outside review r38a #2, #3): the calls one connection loss ends are one event.
An innocent caller whose calls were merely on the wire is not paused; the caller whose calls alone were on it, or
whose calls are lost at loss after loss without an answer between, is — while the others keep the server. On an
injected clock, then once through a real hub whose stdio child exits."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from hub.auth.principal import Principal
from hub.calls.call import Outcome, caller_identity
from hub.config import parse_config
from hub.errors import HubRefusal, HubToolError
from hub.hub import Hub
from hub.policies import BreakerPolicy
from hub.policies.crash_blame import LOST_WITH
from hub.settings import BreakerSettings
from tests.conftest import echo_stdio, error_body
from tests.hub.policies.test_breaker_attribution import call_of
from tests.policy_support import ManualClock

pytestmark = pytest.mark.anyio


def policy(clock: ManualClock) -> BreakerPolicy:
    settings = BreakerSettings(failure_threshold=3, cooldown_s=10.0, min_calls=100, window_s=30.0)
    return BreakerPolicy(lambda server: settings, clock=clock)


def who(name: str) -> Any:
    return caller_identity(call_of(name))


def answered(breakers: BreakerPolicy, name: str) -> None:
    made = call_of(name)
    permit = breakers.admit(made)
    assert not isinstance(permit, HubRefusal), (name, permit)
    breakers.settle(made, permit, Outcome(result=object()))  # type: ignore[arg-type]


CONNECTIONS = iter(range(1_000_000))


def loss(breakers: BreakerPolicy, calls: dict[str, int]) -> None:
    """The loss of one connection (a new one each time), ending `calls[name]` calls of each caller on the wire."""
    on_wire = (next(CONNECTIONS), frozenset(who(name) for name in calls))
    admitted = []
    for name, count in calls.items():
        for _ in range(count):  # all on the wire before the loss
            made = call_of(name)
            permit = breakers.admit(made)
            assert not isinstance(permit, HubRefusal), (name, permit)
            admitted.append((made, permit))
    for made, permit in admitted:
        made.attributes[LOST_WITH] = on_wire
        lost = HubToolError("unavailable", "lost the connection to server 's' (process exited with code 1); try again later",
                            details={"server": "s"}, lost_in_flight="lost the connection to server 's'")
        breakers.settle(made, permit, Outcome(error=lost))


def refusal(breakers: BreakerPolicy, name: str) -> HubRefusal | None:
    verdict = breakers.admit(call_of(name))
    return verdict if isinstance(verdict, HubRefusal) else None


async def test_a_caller_whose_calls_were_merely_on_the_wire_is_not_paused() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    answered(breakers, "carol")
    for _ in range(5):  # alice's input kills the process while bob has six calls on it
        loss(breakers, {"bob": 6, "alice": 1})
        clock.advance(2)
        answered(breakers, "carol")
    assert refusal(breakers, "bob") is None and refusal(breakers, "carol") is None
    assert breakers.breaker("s").state == "closed", "one caller's crashes opened the server for everyone"


async def test_a_caller_whose_calls_alone_were_lost_is_paused_after_three_losses_and_longer_after_more() -> None:
    clock = ManualClock()
    breakers = policy(clock)
    for round_ in range(3):
        assert refusal(breakers, "alice") is None, f"{round_} losses are no pattern"
        answered(breakers, "bob")
        loss(breakers, {"alice": 2})
        clock.advance(2)
    paused = refusal(breakers, "alice")
    assert paused is not None and paused.body.details["reason"] == "breaker_open_for_caller", paused
    assert paused.body.retry_after_s == 8.0 and "while only your calls were on it" in paused.body.message, paused
    assert refusal(breakers, "bob") is None and breakers.breaker("s").state == "closed"
    clock.advance(10)
    answered(breakers, "bob")
    loss(breakers, {"alice": 1})
    again = refusal(breakers, "alice")
    assert again is not None and again.body.retry_after_s == 20.0, again  # a fourth strike: twice as long


@pytest.mark.parametrize("on_wire", [{"alice": 1}, {"alice": 2, "bob": 3}])
async def test_losses_of_a_server_that_works_for_nobody_open_its_breaker_as_before(on_wire: dict[str, int]) -> None:
    clock = ManualClock()
    breakers = policy(clock)
    for _ in range(3):  # one failure per loss, however many calls it ended
        assert breakers.breaker("s").state == "closed"
        loss(breakers, on_wire)
        clock.advance(2)
    assert breakers.breaker("s").state == "open"
    assert not breakers.breaker("s").blame.strikes, "nobody's input is blamed for a server broken for all"


async def test_through_a_hub_the_calls_another_callers_crash_ended_pause_nobody_else() -> None:
    """bob has six slow calls on a shared stdio child when alice's call makes it exit: before, each was bob's own
    failure and bob was paused (`breaker_open_for_caller`) once the child was back, while alice was served."""
    hub = Hub(parse_config({"mcpServers": {"e": echo_stdio(restart={"initial_backoff_s": 0.1, "max_backoff_s": 0.2},
                                                           breaker={"failure_threshold": 5})}}))
    principals = {name: Principal(name, ("*",), "api_key", f"key-{name}") for name in ("alice", "bob", "carol")}
    async with hub:
        assert not (await hub.route_call("e__echo", {"text": "c"}, principal=principals["carol"])).is_error
        answers: list[Any] = []

        async def slow() -> None:
            answers.append(await hub.route_call("e__slow", {"seconds": 30}, principal=principals["bob"]))

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(slow)
            with anyio.fail_after(30):
                while hub.downstreams["e"].stats.in_flight < 6:
                    await anyio.sleep(0.02)
            crashed = await hub.route_call("e__crash", {}, principal=principals["alice"])
            assert error_body(crashed)["code"] == "unavailable"
        assert len(answers) == 6 and all(error_body(a)["code"] == "unavailable" for a in answers), answers
        await _ready(hub)
        again = await hub.route_call("e__echo", {"text": "b"}, principal=principals["bob"])
        assert not again.is_error, error_body(again)


async def _ready(hub: Hub) -> None:
    with anyio.fail_after(30):
        while hub.downstreams["e"].state != "ready":
            await anyio.sleep(0.05)


async def test_through_a_hub_a_call_sent_after_the_crashing_one_is_not_alone() -> None:
    """Review r39a #1: who was on the wire was judged as each lost call ended, so the caller whose call ended last
    always looked alone: bob, whose call went out after alice's slow crashing one, was paused, and alice was not."""
    hub = Hub(parse_config({"mcpServers": {"e": echo_stdio(restart={"initial_backoff_s": 0.1, "max_backoff_s": 0.2})}}))
    principals = {name: Principal(name, ("*",), "api_key", f"key-{name}") for name in ("alice", "bob", "carol")}
    async with hub:
        for _ in range(3):
            await _ready(hub)
            assert not (await hub.route_call("e__echo", {"text": "c"}, principal=principals["carol"])).is_error
            async with anyio.create_task_group() as group:
                group.start_soon(hub.route_call, "e__crash", {"after_s": 1.0}, None, None, principals["alice"])
                with anyio.fail_after(30):
                    while hub.downstreams["e"].stats.in_flight < 1:
                        await anyio.sleep(0.01)
                lost = await hub.route_call("e__slow", {"seconds": 30}, principal=principals["bob"])
                assert error_body(lost)["code"] == "unavailable", lost
        await _ready(hub)
        served = await hub.route_call("e__echo", {"text": "b"}, principal=principals["bob"])
        assert not served.is_error, error_body(served)


async def test_through_a_hub_a_crashing_call_given_up_on_still_counts_as_on_the_wire() -> None:
    """Review r40 #1, #2: alice's crashing call timed out (or was cancelled) before the process died with only bob's
    call on it, so bob was struck (and paused after three) and alice never."""
    hub = Hub(parse_config({"mcpServers": {"e": echo_stdio(restart={"initial_backoff_s": 0.1, "max_backoff_s": 0.2},
                                                           timeout_s=1)}}))
    principals = {name: Principal(name, ("*",), "api_key", f"key-{name}") for name in ("alice", "bob", "carol")}
    async with hub:
        for _ in range(3):
            await _ready(hub)
            assert not (await hub.route_call("e__echo", {"text": "c"}, principal=principals["carol"])).is_error
            timed_out = await hub.route_call("e__crash", {"after_s": 2.5}, principal=principals["alice"])
            assert error_body(timed_out)["code"] == "timeout", error_body(timed_out)  # the handler goes on
            lost = await hub.route_call("e__slow", {"seconds": 30, "steps": 120}, principal=principals["bob"])
            assert error_body(lost)["code"] == "unavailable", error_body(lost)  # progress kept it alive until the exit
        await _ready(hub)
        served = await hub.route_call("e__echo", {"text": "b"}, principal=principals["bob"])
        assert not served.is_error, error_body(served)
