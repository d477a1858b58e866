"""`hub.admin.actions` on a real hub (a stdio server `e`) whose change listener is stuck — as a tool
search re-index embedding a big server's tools for seconds is — in a worker thread that cannot be
cancelled: Restart / Disable / Enable, queued or concurrent, apply in order at once, the server
ends in the state the last one asked for, and each answer says what it did; other listeners (the
clients) are still told of each change at once (`hub.announcer`)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from hub.admin.actions import ActionResult, ServerActions, Verb
from hub.config import parse_config
from hub.hub import Hub
from tests.conftest import echo_stdio

pytestmark = pytest.mark.anyio


async def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    """Wait for a state, bounded generously (a stdio server starts in seconds on a loaded machine)."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


class Stuck:
    """A list-change listener held in a worker thread (as a re-index is) until `release` is set."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.finished = anyio.Event()
        self.told: list[str] = []
        """What a second listener (registered after the stuck one, as a client would be) was told."""

    def reindex(self) -> None:
        self.held.set()
        self.release.wait(120)

    async def listener(self, kind: str) -> None:
        if kind == "tools" and not self.held.is_set():
            await anyio.to_thread.run_sync(self.reindex)  # not cancellable, as a re-index in a thread
            self.finished.set()

    async def recorder(self, kind: str) -> None:
        self.told.append(kind)


@pytest.fixture
async def stuck_hub() -> AsyncIterator[tuple[Hub, Stuck]]:
    """A hub with a server `e` whose list change (`grow`) holds the hub's change listener."""
    stuck = Stuck()

    config = parse_config({"hub": {"connect_timeout_s": 60}, "mcpServers": {"e": echo_stdio()}})
    async with Hub(config) as hub:
        hub.add_change_listener(stuck.listener)  # type: ignore[arg-type]
        hub.add_change_listener(stuck.recorder)  # type: ignore[arg-type]
        try:
            assert not (await hub.route_call("e__grow", {})).is_error
            await wait_until(stuck.held.is_set)
            yield hub, stuck
        finally:
            stuck.release.set()


async def in_order(actions: ServerActions, *verbs: Verb) -> list[ActionResult]:
    """The verbs sent together, in this order, as concurrent requests would be."""
    results: dict[int, ActionResult] = {}

    async def one(i: int, verb: Verb) -> None:
        results[i] = await actions.perform("e", verb, "ops")

    async with anyio.create_task_group() as tg:
        for i, verb in enumerate(verbs):
            tg.start_soon(one, i, verb)
            await anyio.sleep(0)  # each request arrives after the one before
    return [results[i] for i in range(len(verbs))]


async def test_queued_actions_apply_in_order_while_a_listener_is_stuck(stuck_hub: tuple[Hub, Stuck]) -> None:
    hub, stuck = stuck_hub
    e = hub.downstreams["e"]
    actions = ServerActions(hub)

    stuck.told.clear()
    done = await in_order(actions, "disable", "enable")
    assert [(r.verb, r.applied, r.result) for r in done] == [("disable", True, "stopped"), ("enable", True, "starting")]
    await wait_until(lambda: "tools" in stuck.told)  # other listeners are told at once, not after the stuck one
    await wait_until(lambda: e.state == "ready")
    assert hub.catalog.resolve_tool("e__echo") is not None

    done = await in_order(actions, "enable", "restart", "disable", "restart", "disable", "enable", "disable")
    assert [(r.verb, r.applied, r.result) for r in done] == [
        ("enable", True, "unchanged"), ("restart", True, "restarted"), ("disable", True, "stopped"),
        ("restart", False, "refused"), ("disable", True, "unchanged"), ("enable", True, "starting"),
        ("disable", True, "stopped")]
    assert e.state == "stopped" and hub.catalog.resolve_tool("e__echo") is None, "the last action decides"
    assert not stuck.finished.is_set(), "all of it while the listener was still stuck"


async def test_enable_right_after_disable_restarts_the_server(stuck_hub: tuple[Hub, Stuck]) -> None:
    hub, stuck = stuck_hub
    e = hub.downstreams["e"]
    actions = ServerActions(hub)
    done = await in_order(actions, "disable", "enable", "disable", "enable")
    assert [r.result for r in done] == ["stopped", "starting", "stopped", "starting"]
    await wait_until(lambda: e.state == "ready")
    result = await hub.route_call("e__echo", {"text": "back"})
    assert result.structured_content == {"result": "back"}
    assert not stuck.finished.is_set()
    stuck.release.set()  # the held listener finishes: nothing left over from before changes the state
    with anyio.fail_after(30):
        await stuck.finished.wait()
    assert e.state == "ready" and not e.stopping and hub.catalog.resolve_tool("e__echo") is not None
