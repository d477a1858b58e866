"""Who holds which HTTP session, and which one gives way when a cap is reached.

One ledger counts a hub's Streamable HTTP and legacy SSE sessions together, per principal
(`max_sessions_per_principal`) and in all (`max_sessions`). Making room never touches a session in
use while another way exists: a principal at its cap gives up its own least recently used *idle*
session, or is refused (429); at the hub-wide cap the principal holding the most sessions gives up
its least recently used idle one; if none is idle anywhere and the newcomer holds fewer sessions
than that biggest holder, the biggest holder's least recently used session gives way even though
busy (its stream ends; its client reconnects). Only a newcomer already holding as many as anyone
is refused (503). So busy or not, a few principals cannot lock another one out, and none holds more
than its cap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import count
from typing import Any

Owner = Hashable
"""A principal's identity: (client id, issuer, subject) of its token, or `ANONYMOUS`."""

ANONYMOUS: Owner = ("anonymous",)


class SessionRefused(Exception):
    """No room for another session: `status` is 429 (the caller's own cap) or 503 (the hub's)."""

    def __init__(self, status: int, message: str, data: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data


@dataclass
class _Held:
    owner: Owner
    kind: str
    is_idle: Callable[[], bool]
    close: Callable[[], None]
    used: int


class SessionLedger:
    """Open sessions by owner, in least-recently-used order. Synchronous: every change happens
    between two awaits, so concurrent requests never see a half-made decision."""

    def __init__(self, per_principal: int, total: int) -> None:
        self.per_principal = per_principal
        self.total = total
        self._by_owner: dict[Owner, OrderedDict[str, _Held]] = {}
        self._owner_of: dict[str, Owner] = {}
        self._clock = count()
        self.on_end: list[Callable[[str], None]] = []
        """Called with the id of each session that ended (the hub closes its per-client sessions)."""
        self.watch: Any = None
        """The `CredentialWatch` that ends sessions whose credential is no longer valid (auth on)."""

    def make_room(self, owner: Owner) -> None:
        """Close idle sessions as needed so `owner` may open one more, or raise `SessionRefused`."""
        mine = self._by_owner.get(owner)
        if mine is not None and len(mine) >= self.per_principal:
            victim = self._least_recent_idle(mine)
            if victim is None:
                raise SessionRefused(
                    429,
                    f"too many open sessions for this caller: {len(mine)} of {self.per_principal} "
                    "(hub.http.max_sessions_per_principal), none idle; end one (HTTP DELETE with its "
                    "Mcp-Session-Id, or close its stream) and retry",
                    {"limit": self.per_principal, "open": len(mine)},
                )
            self._close(victim)
        if len(self._owner_of) >= self.total:
            victim = self._idle_of_biggest_holder() or self._fair_share_victim(len(mine) if mine else 0)
            if victim is None:
                raise SessionRefused(
                    503,
                    f"the hub has {len(self._owner_of)} open sessions (hub.http.max_sessions), none idle; retry later",
                    {"limit": self.total},
                )
            self._close(victim)

    def add(self, session_id: str, owner: Owner, kind: str, is_idle: Callable[[], bool], close: Callable[[], None]) -> None:
        """Record a session just opened (after `make_room`)."""
        self._by_owner.setdefault(owner, OrderedDict())[session_id] = _Held(owner, kind, is_idle, close, next(self._clock))
        self._owner_of[session_id] = owner

    def touch(self, session_id: str, owner: Owner) -> None:
        """Mark a session as just used, if `owner` holds it."""
        if self._owner_of.get(session_id) == owner:
            held = self._by_owner[owner]
            held[session_id].used = next(self._clock)
            held.move_to_end(session_id)

    def remove(self, session_id: str) -> None:
        """Forget a session that ended (any reason); unknown ids are ignored."""
        owner = self._owner_of.pop(session_id, None)
        if owner is None:
            return
        for ended in self.on_end:
            ended(session_id)
        mine = self._by_owner[owner]
        mine.pop(session_id, None)
        if not mine:
            del self._by_owner[owner]

    def counts(self) -> dict[str, int]:
        """Open sessions by kind, plus `principals` holding any."""
        out: dict[str, int] = {"streamable_http": 0, "sse": 0}
        for mine in self._by_owner.values():
            for held in mine.values():
                out[held.kind] = out.get(held.kind, 0) + 1
        return {**out, "principals": len(self._by_owner)}

    def _least_recent_idle(self, mine: OrderedDict[str, _Held]) -> str | None:
        return next((sid for sid, held in mine.items() if held.is_idle()), None)

    def _idle_of_biggest_holder(self) -> str | None:
        """The least recently used idle session of the owner holding the most sessions (ties: the
        one whose idle session was used longest ago)."""
        best: tuple[int, int] | None = None
        chosen: str | None = None
        for mine in self._by_owner.values():
            sid = self._least_recent_idle(mine)
            if sid is not None:
                rank = (len(mine), -mine[sid].used)
                if best is None or rank > best:
                    best, chosen = rank, sid
        return chosen

    def _fair_share_victim(self, newcomer_holds: int) -> str | None:
        """With no idle session anywhere, a principal holding fewer sessions than the biggest holder
        still gets in: that holder's least recently used session gives way, busy or not (its stream
        ends; its client reconnects). So busy sessions held by a few cannot lock everyone else out."""
        biggest = max(self._by_owner.values(), key=len, default=None)
        if biggest is None or len(biggest) <= newcomer_holds + 1:
            return None
        return next(iter(biggest))

    def _close(self, session_id: str) -> None:
        owner = self._owner_of[session_id]
        close = self._by_owner[owner][session_id].close
        self.remove(session_id)
        close()
