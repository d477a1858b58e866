"""Whose input crashed a shared server (outside reviews r38a #2, #3 and r39a).

A shared connection lost with calls on it (a stdio child exits) ends every call then on the wire, of every caller,
at once. Counting each as its caller's own failure paused an innocent caller with several calls in flight, while the
caller whose input killed the process, with one call in flight, went on crashing it for everyone. So the calls one
loss ends are one event, judged by who had calls on the connection at that moment (`Connection.last_loss`, taken as
it is lost; a caller that had just cancelled a call counts, as its input may still have been running):
- when only one caller had calls on it and the server works for other callers, the loss is that caller's strike;
  `STRIKES` strikes within `STRIKE_MEMORY_S` pause that caller's calls to the server (for the breaker's `cooldown_s`,
  doubling with each further strike, at most `2**MAX_DOUBLINGS` times), and the others keep the server;
- when several callers had calls on it, no caller is charged and the breaker counts nothing (one caller must not
  open it for everyone); while the server works for nobody else, the loss counts once against it, as before.
Limits, written down: a server that exits on its own while one caller's calls are on it (a timer, a leak) strikes
that caller by coincidence, so three strikes are needed, and the refusal does not claim the input is at fault; two
colluding callers who always keep a call on the wire together are never alone, as before this rule; a call given
up on counts as on the wire for a minute (`CallStats.recently_cancelled`), so a crasher whose input dies later than
that leaves the blame to the caller then on the wire, and anyone's timeout within the minute keeps a crasher from
being alone (a request tracked until the server answers it would be exact: not built). Losses the
connection did not see (a per-client session's, an HTTP request's own stream) are judged per call, as any failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.errors import HubRefusal

if TYPE_CHECKING:
    from hub.policies.breaker import Caller, CircuitBreaker

logger = logging.getLogger("hub.breaker")

LOST_WITH = "lost_with"
"""`ToolCall.attributes` key: the loss of the connection this attempt was sent on (`Connection.last_loss`)."""
SENT_ON = "sent_on"
"""`ToolCall.attributes` key: how many losses the server's connection had when the attempt was sent."""
STRIKES = 3
STRIKE_MEMORY_S = 600.0
MAX_DOUBLINGS = 2
KEPT_CALLERS = 256


@dataclass
class CrashBlame:
    """One server's connection losses: which one is being counted, each caller's run of losses and strikes."""

    clock: Callable[[], float]
    loss_of: int | None = None
    """The loss being counted (`Connection.losses` at it)."""
    strikes: dict[Caller, list[float]] = field(default_factory=dict)
    paused: dict[Caller, float] = field(default_factory=dict)
    """Callers paused for their strikes, until when (a later pause of theirs for other failures says so itself)."""
    _counted: set[Caller] = field(default_factory=set)
    """Callers charged for the current loss already (one loss ends all their calls on the wire)."""

    def settle(self, breaker: CircuitBreaker, caller: Caller, lost: tuple[int, frozenset[Caller]]) -> None:
        """Count one call of `caller` lost to loss `lost[0]` of the server's connection, when `lost[1]` had calls on it."""
        now = self.clock()
        loss, lost_with = lost
        first = loss != self.loss_of
        if first:
            self.loss_of, self._counted = loss, set()
        elif caller in self._counted:
            return  # another of its calls lost to the same loss
        self._counted.add(caller)
        if not breaker._works_for_others(caller, now):  # nobody else is served: the server's failure, once, as before
            if first:
                breaker.record_for(caller, False)
            return
        if lost_with == {caller}:
            self._strike(breaker, caller, now)

    def _strike(self, breaker: CircuitBreaker, caller: Caller, now: float) -> None:
        breaker.remember(caller, False)
        kept = [at for at in self.strikes.pop(caller, []) if at > now - STRIKE_MEMORY_S] + [now]
        self.strikes[caller] = kept[-(STRIKES + MAX_DOUBLINGS):]  # newest last
        if len(self.strikes) > KEPT_CALLERS:
            self.strikes.pop(next(iter(self.strikes)))
        if len(kept) >= STRIKES:
            pause = breaker.settings.cooldown_s * 2 ** min(len(kept) - STRIKES, MAX_DOUBLINGS)
            until = breaker.paused[caller] = max(breaker.paused.get(caller, 0.0), now + pause)
            self.paused[caller] = until
            for gone in [c for c, end in self.paused.items() if end <= now]:
                del self.paused[gone]
            logger.warning("breaker for server %r: pausing one caller's calls for %.0fs (the server's connection was lost "
                           "%d times while only that caller's calls were on it)", breaker.name, pause, len(kept))

    def refusal(self, server: str, caller: Caller, wait: float, breaker_until: float) -> HubRefusal | None:
        """The refusal of `caller`'s call while its strikes pause it; None when its pause is another's."""
        if self.paused.get(caller) != breaker_until:
            return None
        return HubRefusal(
            "unavailable",
            f"server {server!r} stopped (its process exited, or its connection was lost) {len(self.strikes.get(caller, []))} "
            "times lately while only your calls were on it, and it serves other callers; your calls to it are paused for "
            f"{wait:.1f}s. If one of your calls may be what stops it (an input it cannot handle), change it; then retry "
            "after that.",
            retry_after_s=round(max(wait, 0.1), 1),
            details={"server": server, "reason": "breaker_open_for_caller"},
        )
