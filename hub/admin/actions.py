"""An operator's Restart / Disable / Enable of one server: applied one at a time per server, in the
order they arrive, each done before it is answered, and answered with what it did.

A Disable returns once the server has stopped (or says that it is still stopping), so an Enable
queued behind it always finds it stopped and starts it: the last action decides the state. An
action that cannot apply is refused and changes nothing — a Restart of a disabled server (Enable
starts it), an Enable while the last connection has still not closed — and one that is already in
effect (Enable of a running server) is answered as such. The Servers page shows the answer, and the
audit row records it (`admin:<verb>`, outcome `ok`, or `denied` with code `conflict` for a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anyio

from hub.hub import Hub

Verb = Literal["restart", "disable", "enable"]
VERBS: tuple[Verb, ...] = ("restart", "disable", "enable")
STOP_WAIT_S = 20.0
"""How long a Disable (and an Enable behind it) waits for the server's connection to close: a stdio
child gets 2 s after stdin closes, 2 s after SIGTERM and 2 s after SIGKILL; the rest is for a loaded
machine. Nothing else may hold a stop up (list-change listeners run apart: `hub.announcer`)."""


@dataclass(frozen=True)
class ActionResult:
    """What one action did: `result` is one word for the audit row, `message` a sentence for the operator."""

    verb: Verb
    server: str
    applied: bool
    """False: refused, nothing changed."""
    result: str
    """`stopped`, `stopping`, `starting`, `restarted`, `reconnecting`, `unchanged` or `refused`."""
    message: str


class ServerActions:
    """The console's server actions on one hub, serialised per server (anyio's lock is first come,
    first served)."""

    def __init__(self, hub: Hub, stop_wait_s: float = STOP_WAIT_S) -> None:
        self.hub = hub
        self.stop_wait_s = stop_wait_s
        self._locks: dict[str, anyio.Lock] = {}

    async def perform(self, name: str, verb: Verb, principal: str) -> ActionResult:
        """Apply `verb` to server `name` (a configured, enabled one) after the actions queued before it."""
        lock = self._locks.setdefault(name, anyio.Lock())
        async with lock:
            if verb == "disable":
                return await self._disable(name)
            if verb == "enable":
                return await self._enable(name)
            return await self._restart(name, principal)

    async def _disable(self, name: str) -> ActionResult:
        downstream = self.hub.downstreams[name]
        if downstream.stopping:
            return ActionResult("disable", name, True, "unchanged", "it was disabled already.")
        self.hub.stop_server(name)
        if await downstream.ended(self.stop_wait_s):
            return ActionResult("disable", name, True, "stopped", "it is stopped and its tools are withdrawn.")
        return ActionResult("disable", name, True, "stopping",
                            f"its tools are withdrawn, but its connection has not closed within {self.stop_wait_s:g} s: "
                            "it is still stopping.")

    async def _enable(self, name: str) -> ActionResult:
        downstream = self.hub.downstreams[name]
        if not downstream.stopping:
            return ActionResult("enable", name, True, "unchanged", f"it is enabled already ({downstream.state}).")
        if not await downstream.ended(self.stop_wait_s):
            return ActionResult("enable", name, False, "refused",
                                f"it is still stopping after its Disable (its connection has not closed within "
                                f"{self.stop_wait_s:g} s), so it stays disabled. Try Enable again in a moment.")
        self.hub.start_server(name)
        return ActionResult("enable", name, True, "starting", "it is starting (reload the page to see it connect).")

    async def _restart(self, name: str, principal: str) -> ActionResult:
        downstream = self.hub.downstreams[name]
        if downstream.stopping:
            return ActionResult("restart", name, False, "refused",
                                "it is disabled, so there is nothing to restart: use Enable to start it again. "
                                "Nothing changed, and its last error is kept.")
        was_up = downstream.state == "ready"
        if downstream.restart(f"restarted from the admin console by {principal}"):
            return (ActionResult("restart", name, True, "restarted", "its connection was ended; it is reconnecting.")
                    if was_up else ActionResult("restart", name, True, "reconnecting", "it is connecting again now."))
        if await downstream.ended(0):  # its supervisor gave up (an in-process server that failed to load)
            self.hub.start_server(name)
            return ActionResult("restart", name, True, "starting", "it is starting again.")
        return ActionResult("restart", name, True, "unchanged", "it is between two connection attempts already.")
