"""The deadline of a request the hub forwards to a server on a client's behalf, other than `tools/call`.

A `tools/call` has the call pipeline's deadline (`hub.policies.deadline`). Every other request the hub
sends a server for a client — `resources/read`, `prompts/get`, `completion/complete`, the client's own
`resources/list` pages, `tasks/*` — has one here (outside review recheck15: a read of a hung server
never ended):

- it is the server's `timeout_s`, else `hub.timeout_s`. Per-tool settings are for tools only. As for a
  call (`hub.policies.deadline`) it is an idle timer: the progress a server reports on a prompt, read
  or completion the client asked progress for is passed on to the client (`hub.forwarded`) and moves
  the deadline on, but never past the hard limit (the server's `max_timeout_s`, else
  `hub.max_timeout_s`) from the request's start (`ProgressDeadline`);
- `tasks/result`, which waits for the task to finish, has the hard limit instead: the server's
  `max_timeout_s`, else `hub.max_timeout_s` (the task keeps running; the client asks again);
- on expiry the request is cancelled (the SDK's client sends `notifications/cancelled`) and the caller
  gets `timeout`, naming the server and the setting to raise;
- an in-process server's request runs in a task of its own (`unless_cancelled`), so the deadline holds
  while its handler waits on a worker thread no cancel interrupts (a plain `def` resource or prompt).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from hub.errors import HubToolError

if TYPE_CHECKING:
    from mcp.shared.dispatcher import ProgressFnT

    from hub.config import HubSettings, ServerConfig
    from hub.downstream.connection import Downstream

logger = logging.getLogger("hub.forwarder")
T = TypeVar("T")

WAITS_FOR_THE_WORK = frozenset({"tasks/result"})
"""Requests answered only once the work they ask about ends: held to the hard limit, not the idle one."""


def hard_limit(hub: HubSettings, server: ServerConfig) -> tuple[float, str]:
    """(seconds, setting) no request to `server` outlives, however much progress it reports."""
    if server.max_timeout_s is not None:
        return server.max_timeout_s, f"mcpServers.{server.name}.max_timeout_s"
    return hub.max_timeout_s, "hub.max_timeout_s"


class ProgressDeadline:
    """A forwarded request's deadline that its server's progress moves on: `idle_s` from the last
    progress (or the start), never past `hard_s` from the start (`within_deadline` enforces it)."""

    def __init__(self, idle_s: float, hard_s: float, hard_setting: str, started: float | None = None) -> None:
        self.idle_s, self.hard_s, self.hard_setting = idle_s, max(idle_s, hard_s), hard_setting
        self.started = anyio.current_time() if started is None else started
        self.scope: anyio.CancelScope | None = None

    @property
    def at_cap(self) -> bool:
        return self.scope is not None and self.scope.deadline >= self.started + self.hard_s

    def passing(self, progress: ProgressFnT | None) -> ProgressFnT | None:
        """`progress`, each report first moving the deadline on; None stays None (no progress asked)."""
        if progress is None:
            return None

        async def moved(value: float, total: float | None, message: str | None) -> None:
            if self.scope is not None:
                self.scope.deadline = min(anyio.current_time() + self.idle_s, self.started + self.hard_s)
            await progress(value, total, message)

        return moved


def request_deadline(hub: HubSettings, server: ServerConfig, method: str) -> tuple[float, str]:
    """(seconds, the setting they come from, as an operator would write it) for `method` to `server`."""
    idle = server.timeout_s or hub.timeout_s
    if method in WAITS_FOR_THE_WORK:
        hard, cap = hard_limit(hub, server)
        return max(idle, hard), cap
    return idle, f"mcpServers.{server.name}.timeout_s" if server.timeout_s is not None else "hub.timeout_s"


async def within_deadline(downstream: Downstream, method: str, work: Coroutine[Any, Any, T], seconds: float,
                          setting: str, clock: ProgressDeadline | None = None, started: float | None = None) -> T:
    """Await `work` (`method` to `downstream`) until `seconds` after `started` (now, if not given: a request
    that waited for a bulkhead slot counts its wait, as a tool call's deadline does), moved on by progress
    through `clock` (whose start is then the request's); past them it is cancelled and `request_timeout`
    raised. An in-process server's work runs in a task of its own (`unless_cancelled`)."""
    if started is None:
        started = clock.started if clock is not None else anyio.current_time()
    if downstream.config.transport == "inprocess":
        work = unless_cancelled(work)
    with anyio.CancelScope(deadline=started + seconds) as scope:
        if clock is not None:
            clock.scope = scope
        return await work
    downstream.stats.timed_out()  # a stdio server is asked whether it still reads (`hub.downstream.liveness`)
    if clock is not None and clock.at_cap:
        seconds, setting = clock.hard_s, clock.hard_setting
    raise request_timeout(downstream.name, method, seconds, setting, anyio.current_time() - started)


def request_timeout(server: str, method: str, seconds: float, setting: str, elapsed: float) -> HubToolError:
    """The `timeout` of a request past its deadline: what timed out, that it was cancelled, what to raise."""
    then = "the task keeps running: ask for its result again" if method in WAITS_FOR_THE_WORK else "retrying later may work"
    return HubToolError(
        "timeout",
        f"server {server!r} did not answer {method} within {seconds:g}s ({setting}); the request was cancelled "
        f"({then}). If the server is legitimately slow, raise {setting}.",
        details={"server": server, "method": method, "timeout_s": seconds, "elapsed_s": round(elapsed, 3),
                 "setting": setting},
    )


async def unless_cancelled(work: Coroutine[Any, Any, T]) -> T:
    """Await `work` in a task of its own, so a cancel — the request's deadline, the caller's cancel —
    takes effect at once even while `work` waits on a thread nothing can interrupt: a plain `def`
    tool, resource or prompt of an in-process server, or a domain's SQLite or CalDAV unit of work, all
    run through `anyio.to_thread` (outside review faults15: a 6 s sync tool under a 1 s deadline answered
    after 6 s, as a success). The work is cancelled as well and ends when its thread returns; what it
    returns then is dropped (a write may still land, as on a stdio server that ignores a cancel)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            task.cancel()
            task.add_done_callback(_abandoned)
        raise


def _abandoned(task: asyncio.Future[Any]) -> None:
    """Collect the outcome of work a cancel left running (`unless_cancelled`), so nothing is logged as lost."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("abandoned in-process work ended with %s", type(exc).__name__)
