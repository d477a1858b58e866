"""Whose input crashed a shared server (outside review r38a #2, #3).

A connection lost in flight (a stdio child exits, an HTTP event stream ends) ends every call then on the wire, of
every caller, at once. Counting each as its caller's own failure paused an innocent caller with several calls in
flight, while the caller whose input killed the process, with one call in flight, went on crashing it for everyone.
So the calls lost to one loss (of one connection: they were sent on it) are one event, and a caller is charged with a *strike* for it when
- its calls were the only ones on the wire, and the server works for other callers; or
- it had calls on the wire at `UNANSWERED_LOSSES` losses in a row without one answer of its own between them
  (a busy innocent caller is answered between another's crashes; the one whose every call kills the process is not).
`STRIKES` strikes within `STRIKE_MEMORY_S` pause that caller's calls to the server (for the breaker's `cooldown_s`,
doubling with each further strike, at most `2**MAX_DOUBLINGS` times): the hub stops forwarding the input that kills
the process, and the other callers keep the server. A loss while the server works for others counts nothing
against its breaker (one caller must not open it for everyone); one while nobody else is served counts once against
it, as before: the server works for nobody.
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
"""`ToolCall.attributes` key: (the connection this attempt was sent on, the callers with calls on the wire when it
was lost)."""
SENT_ON = "sent_on"
"""`ToolCall.attributes` key: which connection of its server the attempt was sent on (its count of restarts then)."""
STRIKES = 2
UNANSWERED_LOSSES = 3
STRIKE_MEMORY_S = 600.0
MAX_DOUBLINGS = 4
KEPT_CALLERS = 256


@dataclass
class CrashBlame:
    """One server's connection losses: which one is being counted, each caller's run of losses and strikes."""

    clock: Callable[[], float]
    loss_of: int | None = None
    """The connection whose loss is being counted."""
    strikes: dict[Caller, list[float]] = field(default_factory=dict)
    unanswered: dict[Caller, int] = field(default_factory=dict)
    """Losses in a row each caller had calls on the wire at, without an answer of its own between them."""
    paused: dict[Caller, float] = field(default_factory=dict)
    """Callers paused for their strikes, until when (a later pause of theirs for other failures says so itself)."""
    _counted: set[Caller] = field(default_factory=set)
    """Callers charged for the current loss already (one loss ends all their calls on the wire)."""

    def answered(self, caller: Caller) -> None:
        """`caller`'s call was answered: its run of losses ends."""
        if self.unanswered:
            self.unanswered.pop(caller, None)

    def settle(self, breaker: CircuitBreaker, caller: Caller, lost: tuple[int, frozenset[Caller]]) -> None:
        """Count one call of `caller` lost to the loss of connection `lost[0]`, which ended the calls of `lost[1]`."""
        now = self.clock()
        connection, lost_with = lost
        first = connection != self.loss_of
        if first:
            self.loss_of, self._counted = connection, set()
        elif caller in self._counted:
            return  # another of its calls lost to the same loss
        self._counted.add(caller)
        if not breaker._works_for_others(caller, now):  # nobody else is served: the server's failure, once, as before
            if first:
                breaker.record_for(caller, False)
            return
        run = self.unanswered[caller] = self.unanswered.get(caller, 0) + 1
        if len(self.unanswered) > KEPT_CALLERS:  # stale callers: the oldest first
            self.unanswered.pop(next(iter(self.unanswered)))
        if lost_with == {caller} or run >= UNANSWERED_LOSSES:
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
                           "%d times with that caller's calls on it)", breaker.name, pause, len(kept))

    def refusal(self, server: str, caller: Caller, wait: float, breaker_until: float) -> HubRefusal | None:
        """The refusal of `caller`'s call while its strikes pause it; None when its pause is another's."""
        if self.paused.get(caller) != breaker_until:
            return None
        return HubRefusal(
            "unavailable",
            f"server {server!r} stopped (its process exited, or its connection was lost) with your calls on it "
            f"{len(self.strikes.get(caller, []))} times lately, while other callers' calls were answered; your calls to "
            f"it are paused for {wait:.1f}s. Look at what the calls send (an input that makes the server fail), then "
            "retry after that.",
            retry_after_s=round(max(wait, 0.1), 1),
            details={"server": server, "reason": "breaker_open_for_caller"},
        )
