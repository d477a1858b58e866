"""The deadline of a request the hub forwards to a server on a client's behalf, other than `tools/call`.

A `tools/call` has the call pipeline's deadline (`hub.policies.deadline`). Every other request the hub
sends a server for a client — `resources/read`, `prompts/get`, `completion/complete`, the client's own
`resources/list` pages, `tasks/*` — has one here (outside review recheck15: a read of a hung server
never ended):

- it is the server's `timeout_s`, else `hub.timeout_s`. Per-tool settings are for tools only; the
  progress a server reports on a prompt, read or completion is passed on to the client
  (`hub.forwarded`) but does not extend this deadline: the idle timer is the whole deadline;
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
    from hub.config import HubSettings, ServerConfig
    from hub.downstream.connection import Downstream

logger = logging.getLogger("hub.forwarder")
T = TypeVar("T")

WAITS_FOR_THE_WORK = frozenset({"tasks/result"})
"""Requests answered only once the work they ask about ends: held to the hard limit, not the idle one."""


def request_deadline(hub: HubSettings, server: ServerConfig, method: str) -> tuple[float, str]:
    """(seconds, the setting they come from, as an operator would write it) for `method` to `server`."""
    idle = server.timeout_s or hub.timeout_s
    if method in WAITS_FOR_THE_WORK:
        cap = f"mcpServers.{server.name}.max_timeout_s" if server.max_timeout_s is not None else "hub.max_timeout_s"
        return max(idle, server.max_timeout_s or hub.max_timeout_s), cap
    return idle, f"mcpServers.{server.name}.timeout_s" if server.timeout_s is not None else "hub.timeout_s"


async def within_deadline(downstream: Downstream, method: str, work: Coroutine[Any, Any, T], seconds: float,
                          setting: str) -> T:
    """Await `work` (`method` to `downstream`) for at most `seconds`; past them it is cancelled and
    `request_timeout` raised. An in-process server's work runs in a task of its own (`unless_cancelled`)."""
    started = anyio.current_time()
    if downstream.config.transport == "inprocess":
        work = unless_cancelled(work)
    with anyio.move_on_after(seconds):
        return await work
    downstream.stats.timed_out()  # a stdio server is asked whether it still reads (`hub.downstream.liveness`)
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
