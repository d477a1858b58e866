"""Whether a stdio server that let a call time out still reads its requests (a mixin of
`hub.downstream.connection.Downstream`).

A stdio child has no health check: its exit and its pipes are watched, but a child that stays alive
and stops reading (a deadlock, a blocking call with no timeout) used to be left as it was, every later
call timing out until the hub restarted (outside review recheck15 #8). So when a call the server had
for its whole deadline times out (`call_timed_out`, from `hub.calls.pipeline`), the connection's
watcher sends it a `ping` with a deadline of its own (`restart.ping_timeout_s`, 5 s): any answer —
a result, or an error (a 2026-07-28 server has no `ping` and may answer -32601) — shows it reads and
answers, and it is left alone, however slow its tools; no answer, and the connection is lost: the
child is stopped and started again, the reason naming the ping.

Decisions: nothing is sent to an idle server (a wedged one harms no call until one arrives, and a
periodic ping would wake every child for nothing); one timeout is enough to ask (a ping is one line;
timeouts while one is under way share it); per-client children (`session: per_client`) are not
pinged: the shared session says nothing of them. A server that reads nothing for its whole tool (one
thread, no progress) for `timeout_s` + `ping_timeout_s` is taken for hung: raise either, send
progress, or set `ping_timeout_s` to null.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError

from hub.config import ServerConfig
from hub.downstream.json_channel import ConnectionLost, JsonChannel

if TYPE_CHECKING:
    from hub.downstream.sessions import SessionPool
    from hub.downstream.stats import CallStats


class Liveness:
    """`call_timed_out` and the connection's `_watch_liveness` task (state lives on `Downstream`)."""

    config: ServerConfig
    log: logging.Logger
    pool: SessionPool | None
    _json: JsonChannel | None
    stats: CallStats
    _suspect: anyio.Event | None = None
    """Set to ask the watcher for a ping; None while no stdio connection is watched."""
    if TYPE_CHECKING:
        def _lose(self, reason: str) -> None: ...

    def call_timed_out(self) -> None:
        """A call this server had on the wire timed out: unless one is under way, a liveness check of
        the shared stdio session follows (calls on per-client sessions say nothing of it)."""
        if self._suspect is not None and self.pool is None:
            self._suspect.set()

    @property
    def watches_liveness(self) -> bool:
        """Whether this connection gets a watcher: a stdio server, unless `ping_timeout_s` is null."""
        return self.config.transport == "stdio" and self.config.restart.ping_timeout_s is not None

    async def _watch_liveness(self, client: Client) -> None:
        """Until the connection ends: after each timeout, one ping; none answered is a loss."""
        timeout = self.config.restart.ping_timeout_s
        assert timeout is not None
        self._suspect = suspect = anyio.Event()
        try:
            while True:
                await suspect.wait()
                if not await self._answers_ping(client, timeout):
                    self.log.warning("did not answer a ping within %gs after a call timed out: stopping and "
                                     "restarting it", timeout)
                    self._lose(f"did not answer a ping within {timeout:g}s after a call timed out (it stopped "
                               "reading its requests); it is stopped and started again")
                    return
                self.log.info("answered a ping after a call timed out: it is slow, not hung; left running")
                self._suspect = suspect = anyio.Event()
        finally:
            self._suspect = None

    async def _answers_ping(self, client: Client, timeout: float) -> bool:
        """Whether the server answers a `ping` (any answer, an error too) within `timeout` seconds of
        having no call in flight; a closed connection is left to the supervisor (True: nothing to add).
        While calls are in flight the wait goes on (re-check 16: a one-thread server busy with a long
        call, within its deadline, was taken for hung when a shorter call beside it timed out, and the
        long call was cut off): calls have deadlines, so the wait is bounded."""
        answered = anyio.Event()
        verdict = True

        async def ping() -> None:
            try:
                await self._ping(client)
            except (ConnectionLost, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # its pipes closed: its exit (or their end) already tells the supervisor
            except MCPError:
                pass  # an error answer is an answer: it reads its requests
            except Exception as exc:  # boundary: a ping the SDK would not send proves nothing either way
                self.log.debug("could not ping it: %s", exc)
            answered.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(ping)
            while not answered.is_set():
                with anyio.move_on_after(timeout):
                    await answered.wait()
                if not answered.is_set() and self.stats.in_flight == 0:
                    verdict = False
                    tg.cancel_scope.cancel()
                    break
        return verdict

    async def _ping(self, client: Client) -> None:
        session: Any = client.session
        stamp = session._stamp  # noqa: SLF001 — the era's `_meta` envelope exactly as the SDK writes it
        if self._json is not None and self._json.open:
            await self._json.request("ping", {}, stamp)
        else:  # no JSON channel (not on asyncio): through the SDK session
            data: dict[str, Any] = {"method": "ping", "params": {}}
            opts: dict[str, Any] = {}
            stamp(data, opts)
            await session._dispatcher.send_raw_request("ping", data["params"], opts)  # noqa: SLF001
