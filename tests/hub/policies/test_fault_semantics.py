"""Issue #18, fault semantics 3, 4 and 5 through a real hub with real stdio children: an open breaker
or a full queue refuses at once, refusals the hub makes itself never count against a server, and
one slow server does not hold up the hub's `initialize` or the other servers' tools."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from hub.config import parse_config
from hub.hub import Hub, UnknownTool
from hub.policies import CircuitBreaker
from tests.conftest import PY, ROOT, echo_stdio, write_config, error_body
from tests.express_calls import Route, route  # noqa: F401 — `route`: the fixture (both drivers)

pytestmark = pytest.mark.anyio

def hub_for(servers: dict[str, Any], **hub_settings: Any) -> Hub:
    return Hub(parse_config({"hub": hub_settings, "mcpServers": servers}))


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


class ShiftedClock:
    """Real time plus a shift the test sets: a cool-down can be made to end within moments."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.shift


# -- 3: an open breaker (or a full queue) fails fast, for every tool ------------------------------


async def test_open_breaker_refuses_a_read_only_call_at_once_without_waiting_out_the_cooldown(route: Route) -> None:
    servers = {"e": echo_stdio(timeout_s=0.3, breaker={"failure_threshold": 1, "cooldown_s": 30},
                            tool_overrides={"flaky_read": {"timeout_s": 10}})}
    async with hub_for(servers) as hub:
        clock = ShiftedClock()
        breaker = hub.breakers.breakers["e"] = CircuitBreaker("e", hub.downstreams["e"].config.breaker, clock=clock)
        timed_out = await route(hub, "e__hang", {})
        assert error_body(timed_out)["code"] == "timeout" and breaker.state == "open"

        clock.shift = 29.0  # a second of cool-down left: a retry honouring retry_after_s would wait it out
        refused = await route(hub, "e__flaky_read", {"key": "k", "failures": 0})
        body = refused.structured_content
        assert refused.is_error and body["code"] == "unavailable" and "circuit breaker open" in body["message"]
        assert 0.5 <= body["retry_after_s"] <= 1.0
        assert breaker.transitions == [("closed", "open")], "the refused call must not have become a probe"


async def test_a_full_queue_refuses_a_read_only_call_at_once(route: Route) -> None:
    servers = {"s": echo_stdio(max_concurrency=1, max_queue=0, timeout_s=10)}
    async with hub_for(servers) as hub:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.route_call, "s__hang", {})
            await wait_until(lambda: hub.bulkheads.bulkhead("s").busy == 1)
            started = time.monotonic()
            refused = await route(hub, "s__add", {"a": 1, "b": 2})
            elapsed = time.monotonic() - started
            tg.cancel_scope.cancel()
        body = error_body(refused)
        assert body["code"] == "unavailable" and "saturated" in body["message"] and body["retry_after_s"] > 0
        # Retrying would honour retry_after_s (1 s) twice before giving up; a refusal takes microseconds.
        assert elapsed < 0.9, elapsed
        assert hub.breakers.breaker("s").state == "closed"


# -- 4: a restart must not lock a server out ---------------------------------------------------------


async def test_calls_during_a_restart_are_refused_uncounted_and_work_once_the_child_is_back(route: Route) -> None:
    servers = {"e": echo_stdio(restart={"initial_backoff_s": 0.5}, breaker={"failure_threshold": 3, "cooldown_s": 30})}
    async with hub_for(servers) as hub:
        crashed = await route(hub, "e__crash", {})
        assert error_body(crashed)["code"] == "unavailable"
        downstream, breaker = hub.downstreams["e"], hub.breakers.breaker("e")
        refusals: list[dict[str, Any]] = []
        with anyio.fail_after(30):
            while downstream.state != "ready":
                for name, args in (("e__echo", {"text": "x"}), ("e__add", {"a": 1, "b": 1})):
                    result = await route(hub, name, args)
                    if result.is_error:
                        refusals.append(error_body(result))
                await anyio.sleep(0.01)
        assert len(refusals) >= 6, "the hammer never hit the restart window"
        for body in refusals:
            assert body["code"] == "unavailable" and body["retry_after_s"] > 0, body
            assert "exited with code 7" in body["message"], body
        assert breaker.state == "closed" and breaker.transitions == []
        back = await route(hub, "e__echo", {"text": "back"})
        assert back.structured_content == {"result": "back"}


# -- 5: one slow server must not delay everyone's start ----------------------------------------------


def hub_params(config: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=PY, args=["-m", "hub.cli", "serve", "--config", str(config), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT),
    )


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def test_a_server_hanging_at_its_handshake_does_not_delay_initialize_or_the_others(tmp_path: Path) -> None:
    # The hanging server would hold the hub's start for its whole 120 s connect timeout.
    config = write_config(
        tmp_path,
        {"slowstart": echo_stdio("--hang-at-start"), "ok": echo_stdio("--name", "ok")},
        {"connect_timeout_s": 120, "list_wait_s": 0.5},
    )
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if type(message).__name__ == "ToolListChangedNotification":
            changed.set()

    with anyio.fail_after(60):
        async with Client(hub_params(config), mode="legacy", message_handler=on_message) as client:
            names = await tool_names(client)  # at most list_wait_s late: the hanging server is not waited for
            while "ok__echo" not in names:  # `ok` arrived after the first answer: clients are told
                await changed.wait()
                changed = anyio.Event()
                names = await tool_names(client)
            assert not any(n.startswith("slowstart__") for n in names)
            assert (await client.call_tool("ok__echo", {"text": "hi"})).structured_content == {"result": "hi"}
            starting = await client.call_tool("slowstart__echo", {"text": "hi"})  # its server is still starting
            assert starting.is_error and error_body(starting)["code"] == "unavailable"
            assert error_body(starting)["details"] == {"server": "slowstart", "state": "starting", "reason": "starting"}


async def test_a_call_to_a_starting_servers_tool_is_audited_as_answered(caplog: pytest.LogCaptureFixture) -> None:
    """The audit row and log line say what the caller got (`unavailable`), not `not_found`."""
    caplog.set_level(logging.INFO, logger="hub.calls")
    async with serve_like({"slowstart": echo_stdio("--hang-at-start")}, call_wait_s=0.2, connect_timeout_s=120) as hub:
        answer = await hub.route_call("slowstart__echo", {"text": "hi"})
    assert error_body(answer)["code"] == "unavailable" and error_body(answer)["details"]["reason"] == "starting"
    lines = [r.getMessage() for r in caplog.records if r.name == "hub.calls" and "slowstart__echo" in r.getMessage()]
    assert len(lines) == 1 and "server=slowstart " in lines[0] and "outcome=denied code=unavailable" in lines[0], lines


def serve_like(servers: dict[str, Any], **hub_settings: Any) -> Hub:
    """A hub entered the way `mcp-hub serve` enters it: without waiting for any server."""
    return Hub(parse_config({"hub": hub_settings, "mcpServers": servers}), wait_at_start=False)


async def test_a_call_before_the_first_listing_waits_for_the_servers_still_connecting() -> None:
    # Listings remembered from an earlier start would list the tool at once (test_stdio_listing_cache covers that);
    # this is the first start ever, which other tests of this worker may have made not the first.
    async with serve_like({"ok": echo_stdio("--name", "ok")}, list_wait_s=60, remember_listings=False) as hub:
        assert hub.catalog.resolve_tool("ok__echo") is None, "entered before any server was up"
        early = await hub.route_call("ok__echo", {"text": "early"})
        assert early.structured_content == {"result": "early"}


async def test_the_first_listing_waits_for_a_hanging_server_only_list_wait_s() -> None:
    servers = {"slowstart": echo_stdio("--hang-at-start"), "ok": echo_stdio("--name", "ok")}
    async with serve_like(servers, connect_timeout_s=120, list_wait_s=0.5, call_wait_s=0.5) as hub:
        # Never listed: after the bounded waits its server is still starting, which is what the caller is told.
        starting = await hub.route_call("slowstart__echo", {"text": "x"})
        assert starting.is_error and error_body(starting)["code"] == "unavailable"
        with pytest.raises(UnknownTool):  # a name no configured namespace owns is unknown
            await hub.route_call("nobody__echo", {"text": "x"})
        assert hub.first_listing.settled and hub.downstreams["slowstart"].state == "starting"
        await wait_until(lambda: hub.downstreams["ok"].state == "ready")
        assert (await hub.route_call("ok__echo", {"text": "b"})).structured_content == {"result": "b"}
