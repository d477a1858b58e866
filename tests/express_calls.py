"""Calls made the way the hub's stdio front end makes them: the express driver first
(`Hub.start_express`), `Hub.route_call` when it declines (a name the caller cannot use) — so the
resilience tests can run every scenario through both drivers and prove they agree."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.dispatcher import ProgressFnT

from hub.hub import Hub
from hub.wire import ToolResult, WireResult


class PathCounts:
    """How many calls the express driver finished itself, escalated to the awaiting driver, or declined."""

    def __init__(self) -> None:
        self.express = self.escalated = self.declined = 0


async def call_like_stdio_front(hub: Hub, name: str, arguments: dict[str, Any] | None = None,
                                counts: PathCounts | None = None, progress: ProgressFnT | None = None) -> types.CallToolResult:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[ToolResult] = loop.create_future()
    task: asyncio.Task[Any] | None = None

    def done(result: ToolResult) -> None:
        answer.set_result(result)

    def escalate(outcome: Coroutine[Any, Any, ToolResult]) -> asyncio.Task[Any]:
        nonlocal task
        task = loop.create_task(outcome)
        task.add_done_callback(lambda t: answer.cancel() if t.cancelled() else (
            answer.set_exception(exc) if (exc := t.exception()) is not None else answer.set_result(t.result())))
        return task

    express = hub.start_express(name, arguments or {}, hub.access.local, done, escalate, progress)
    if express is None:
        if counts is not None:
            counts.declined += 1
        return await hub.route_call(name, arguments, progress)
    try:
        result = await asyncio.shield(answer)
    except asyncio.CancelledError:
        escalated = express.escalate()
        loop.call_soon(escalated.cancel)  # as the front end cancels: once the chain has started
        await asyncio.gather(escalated, return_exceptions=True)
        raise
    if counts is not None:
        if task is None:
            counts.express += 1
        else:
            counts.escalated += 1
    if isinstance(result, WireResult):
        return types.CallToolResult.model_validate(result.body, by_name=False)
    return result


Route = Callable[[Hub, str, dict[str, Any]], Awaitable[Any]]
"""How a test's call reaches the hub: `via_chain` or `via_express` (the `route` fixture gives each in turn)."""


async def via_chain(hub: Hub, name: str, args: dict[str, Any]) -> Any:
    return await hub.route_call(name, args)


async def via_express(hub: Hub, name: str, args: dict[str, Any]) -> Any:
    return await call_like_stdio_front(hub, name, args)


@pytest.fixture(params=[via_chain, via_express], ids=["chain", "express"])
def route(request: pytest.FixtureRequest) -> Route:
    """Each call path in turn, for a test that must hold on both drivers."""
    return request.param  # type: ignore[no-any-return]
