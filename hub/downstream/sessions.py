"""Per-client downstream sessions (issue #19 item 7): one server, one session per upstream client.

A server that keeps state per session (resources a session creates, a client's roots, its own
sampling requests) must not share one downstream session among every client of the hub. A
`SessionPool` gives each upstream client connection (the `owner`) a session of its own:

- opened on the owner's first use (`async with pool.using(owner) as client`), reused after;
- at most `max_sessions` open; one more owner gets `HubRefusal("unavailable")`, retryable, with
  `details.reason: "sessions_full"` — never a shared session instead (that is the leak this avoids);
  one caller (`using(..., caller=)`) may hold `max_per_caller` of them (`"sessions_share"` beyond);
- closed after `idle_s` without use (never while in use, nor while it holds a resource subscription:
  `pin`); when its owner is garbage-collected (the
  client connection ended) or by `close(owner)` / `close_where(...)`, once no call uses it; and all
  of them when `run()` ends (or `stop()`);
- ended at once when its server lost it — its child exited, its event stream ended (`end`), or the
  server answered that it no longer knows it (HTTP 404, `end_client`): one path, so the
  subscriptions it held are renewed on a new session alike (`on_lost_pins`);
- each session is entered and left in a task of its own inside `run()`'s task group, as anyio
  requires of an `mcp.Client`;
- lent (`using(owner, lend_key=...)`): an owner that is one 2026-07-28 request has no session beyond
  itself, and a stdio server's session is a child process (~0.5 s to start). So its released session
  is parked, not closed, and the next such request with the same `lend_key` (the caller's principal)
  borrows it: one request at a time, never another key's. Parked sessions count against
  `max_sessions` (the oldest is closed to make room for another key) and close after `idle_s`.

`open_session(owner)` builds the (not yet entered) client: the hub passes one whose sampling /
elicitation / roots callbacks go straight to that owner, so no "most recent call" guess is needed.
The hub's front end sets `current_owner` (`hub.downstream.owners`: the caller's upstream connection)
for each request; `Downstream.session()` asks its pool for that owner's session (docs/protocol.md).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from hub.downstream.owners import OwnerRef
from hub.errors import HubRefusal, describe_failure
from hub.redact import mask

logger = logging.getLogger("hub.downstream.sessions")

OpenSession = Callable[[OwnerRef], Any]
"""`open_session(owner_ref)`: an async context manager (an `mcp.Client`) that is a new session of the
server, for the owner `owner_ref()` (a lent session's owner changes: read it when needed)."""


def opening_failure(exc: BaseException) -> str:
    """Why a session could not be opened, in a few masked words: the first real exception of the SDK's
    exception group (outside review faults19 #6: the caller was told only "ExceptionGroup")."""
    return mask(describe_failure(exc))


@dataclass(eq=False)
class _Session:
    owner: weakref.ref[Any]
    ref: OwnerRef
    key: int
    """Its owner's key in `SessionPool._sessions` (changes when it is lent)."""
    lend_key: Hashable | None = None
    """Set for a session of stateless requests: parked when released, lent to that key's next request."""
    caller: Hashable | None = None
    """Whose session it is, for the share one caller may hold (None: not counted, e.g. auth off)."""
    client: Any = None
    in_use: int = 0
    pinned: set[Hashable] = field(default_factory=set)
    """The subscriptions (the server's URIs) held on it: never closed as idle while any is (its owner
    leaving still closes it)."""
    released: bool = False
    """Its owner is done with it: closed as soon as nothing uses it (a call in flight finishes first)."""
    last_used: float = 0.0
    ready: anyio.Event = field(default_factory=anyio.Event)
    closing: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


class SessionPool:
    """The per-client sessions of one downstream server."""

    def __init__(self, server: str, open_session: OpenSession, *, max_sessions: int = 100, idle_s: float = 300.0) -> None:
        self.server = server
        self._open = open_session
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self._sessions: dict[int, _Session] = {}
        self._parked: dict[Hashable, list[_Session]] = {}
        """Released sessions of stateless requests, by lend key, oldest first (see the module docstring)."""
        self._tg: anyio.abc.TaskGroup | None = None
        self._changed = anyio.Event()
        self._ended = anyio.Event()
        self.on_lost_pins: Callable[[], None] | None = None
        """Told when a session holding subscriptions ended with its server (`end`, `end_client`): the hub
        renews them on a new session (`hub.relay.subscriptions`; re-check of round 14: a crash dropped
        them; relay round 15: a restarted HTTP server's 404 did)."""
        self.prepare: Callable[[Any, Any], Awaitable[None]] | None = None
        """`prepare(owner, client)`, run on each new session before its first use (the owner's log level)."""

    @property
    def open_count(self) -> int:
        """Sessions open: those of owners, and those parked to be lent."""
        return len(self._sessions) + sum(map(len, self._parked.values()))

    async def wait_open_count(self, count: int) -> None:
        """Wait until exactly `count` sessions are open (woken as each session ends)."""
        while self.open_count != count:
            if self._ended.is_set():
                self._ended = anyio.Event()
            await self._ended.wait()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve sessions until cancelled; every session is closed on the way out."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._expire_idle)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            self._sessions.clear()
            self._parked.clear()

    def stop(self) -> None:
        """End `run()` (every session is closed on the way out)."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    @property
    def max_per_caller(self) -> int:
        """Sessions one caller may hold: a quarter of them (at least one), so one caller's concurrent
        requests never take every session (re-check of round 12), nor one with a second key, nor one
        heavy caller and a few others (round 13: three quarters for one left a quarter for all the rest)."""
        return max(1, self.max_sessions // 4)

    @asynccontextmanager
    async def using(self, owner: Any, lend_key: Hashable | None = None, caller: Hashable | None = None) -> AsyncIterator[Any]:
        """The owner's session (opened if it has none; with `lend_key`, one parked for that key if
        any) for the duration of the block. `caller`: whose it is, held to `max_per_caller`."""
        session = await self._session_of(owner, lend_key, caller)
        session.in_use += 1
        try:
            yield session.client
        finally:
            session.in_use -= 1
            session.last_used = anyio.current_time()
            if session.released and not session.in_use:
                self._park_or_close(session)
            self._poke()

    def client_of(self, owner: Any) -> Any:
        """The owner's open session's client, or None (none opened yet, or closed)."""
        session = self._sessions.get(id(owner))
        if (session is None or session.owner() is not owner or not session.ready.is_set() or session.error is not None
                or session.released or session.closing.is_set()):
            return None
        return session.client

    def pins_of(self, owner: Any) -> frozenset[Hashable]:
        """The subscriptions held on the owner's current session (empty: none, or no session open)."""
        session = self._sessions.get(id(owner))
        if session is None or session.owner() is not owner or session.released or session.closing.is_set():
            return frozenset()
        return frozenset(session.pinned)

    def pin(self, owner: Any, key: Hashable, held: bool) -> None:
        """Record the subscription `key` as held (or no longer) on the owner's open session (`_Session.pinned`)."""
        session = self._sessions.get(id(owner))
        if session is not None and session.owner() is owner:
            if held:
                session.pinned.add(key)
            else:
                session.pinned.discard(key)
            self._poke()

    def close(self, owner: Any) -> None:
        """Close the owner's session, if it has one (its client connection ended), once no call uses it."""
        session = self._sessions.get(id(owner))
        if session is not None and session.owner() is owner:
            self._release(session)

    def end(self, ref: OwnerRef) -> None:
        """The session opened for `ref` has lost its server (its child exited, its event stream ended):
        closed now — also one parked, which would otherwise be lent, dead, to its caller's next request
        for ever (re-check of round 12)."""
        for session in [*self._sessions.values(), *(s for parked in self._parked.values() for s in parked)]:
            if session.ref is ref:
                self._unpark(session)
                session.lend_key = None
                session.closing.set()
                self._poke()
                if session.pinned and self.on_lost_pins is not None:
                    self.on_lost_pins()  # its subscriptions go with it: renewed on a new session

    def end_client(self, client: Any) -> None:
        """The server answered that it no longer knows the session whose client is `client` (HTTP 404:
        restarted, or it expired the session): ended as by `end` — not the owner's session of the moment,
        which a concurrent request may already have opened anew."""
        found = [s for s in [*self._sessions.values(), *(s for parked in self._parked.values() for s in parked)]
                 if s.client is client and not s.closing.is_set()]  # once: the transport may have ended it first
        for session in found:
            self.end(session.ref)

    def close_all(self) -> None:
        """Close every session (the server is restarted or stopped): parked ones now, those in use once
        their calls finish; none is lent again (re-check of round 12: a restarted server's old children
        kept serving, with their old state)."""
        for sessions in list(self._parked.values()):
            for session in list(sessions):
                self._unpark(session)
                session.closing.set()
        for session in list(self._sessions.values()):
            session.lend_key = None
            self._release(session)

    def close_where(self, ended: Callable[[Any], bool]) -> None:
        """Close the session of each owner for which `ended(owner)` is true."""
        for session in list(self._sessions.values()):
            owner = session.owner()
            if owner is not None and ended(owner):
                self._release(session)

    async def _session_of(self, owner: Any, lend_key: Hashable | None, caller: Hashable | None) -> _Session:
        key = id(owner)
        session = self._sessions.get(key)
        if session is not None and session.owner() is not owner:  # an id reused after its owner died
            session.closing.set()
            session = None
        if session is not None and (session.released or session.closing.is_set()):
            # Being closed (its server restarted, its owner let it go): a call in flight finishes on it,
            # a new one gets a new session (re-check of round 13: it got the old child, then "lost").
            session = None
        if session is None and lend_key is not None and (session := self._borrow(lend_key, owner)) is not None:
            if self.prepare is not None:
                await self._prepare(session, owner)
        if session is None:
            if self._tg is None:
                raise HubRefusal("unavailable", f"server {self.server!r}: per-client sessions are not running",
                                 retry_after_s=1.0, details={"server": self.server, "reason": "down"})
            if caller is not None and self._held_by(caller) >= self.max_per_caller:
                self._close_oldest_parked(caller)
                if self._held_by(caller) >= self.max_per_caller:
                    raise HubRefusal(
                        "unavailable", f"you hold {self.max_per_caller} of server {self.server!r}'s {self.max_sessions} "
                        "per-client sessions, as many as one caller may (the rest are kept for others); try again when "
                        "one of your requests or sessions ends", retry_after_s=min(self.idle_s, 30.0),
                        details={"server": self.server, "reason": "sessions_share"})
            if self.open_count >= self.max_sessions:
                self._close_oldest_parked()
            if self.open_count >= self.max_sessions:
                raise HubRefusal(
                    "unavailable", f"server {self.server!r} has its {self.max_sessions} per-client sessions in use; "
                    "try again when one is released (idle sessions close after "
                    f"{self.idle_s:g}s), or ask the hub's operator to raise its max_sessions", retry_after_s=min(self.idle_s, 30.0),
                    details={"server": self.server, "reason": "sessions_full"})
            session = _Session(weakref.ref(owner, lambda _ref, key=key: self._owner_gone(key)), OwnerRef(owner), key,
                               lend_key, caller)
            session.last_used = anyio.current_time()
            self._sessions[key] = session
            self._tg.start_soon(self._hold, session)
        await session.ready.wait()
        if session.error is not None:
            raise HubRefusal("unavailable", f"could not open a session with server {self.server!r} "
                             f"({opening_failure(session.error)}): it may be down or restarting; try again in 1s",
                             retry_after_s=1.0, details={"server": self.server, "reason": "down"}) from session.error
        return session

    async def _hold(self, session: _Session) -> None:
        """Enter the session's client, keep it open until it is closed, leave it (all in this task)."""
        try:
            client = self._open(session.ref)
            async with client:
                session.client = client
                if self.prepare is not None and (alive := session.owner()) is not None:
                    await self._prepare(session, alive)
                    del alive  # the pool must not keep the owner alive
                session.ready.set()
                await session.closing.wait()
        except Exception as exc:  # noqa: BLE001 — reported to whoever waits for it; the pool goes on
            session.error = exc
        finally:
            session.ready.set()
            if self._sessions.get(session.key) is session:
                del self._sessions[session.key]
            self._unpark(session)
            session.closed.set()
            self._ended.set()
            self._poke()

    async def _prepare(self, session: _Session, owner: Any) -> None:
        assert self.prepare is not None
        try:
            with anyio.fail_after(10):
                await self.prepare(owner, session.client)
        except Exception:  # noqa: BLE001 — best effort: the session serves without it
            logger.warning("server %r: preparing a per-client session failed", self.server)

    # -- lending (sessions of stateless requests) ------------------------------------------------

    def _borrow(self, lend_key: Hashable, owner: Any) -> _Session | None:
        """A session parked for `lend_key`, now `owner`'s (the most recently used: the warmest)."""
        parked = self._parked.get(lend_key)
        while parked:
            session = parked.pop()
            if session.closing.is_set() or session.error is not None:
                continue
            if not parked:
                del self._parked[lend_key]
            key = id(owner)
            session.owner = weakref.ref(owner, lambda _ref, key=key: self._owner_gone(key))
            session.ref.rebind(owner)
            session.key, session.released, session.last_used = key, False, anyio.current_time()  # not idle while lent
            self._sessions[key] = session
            return session
        self._parked.pop(lend_key, None)
        return None

    def _park_or_close(self, session: _Session) -> None:
        """A released session nobody uses: parked for its lend key's next request, else closed."""
        if session.lend_key is None or session.closing.is_set() or session.error is not None or self._tg is None:
            session.closing.set()
            return
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
        self._parked.setdefault(session.lend_key, []).append(session)

    def _unpark(self, session: _Session) -> None:
        parked = self._parked.get(session.lend_key) if session.lend_key is not None else None
        if parked and session in parked:
            parked.remove(session)
            if not parked:
                del self._parked[session.lend_key]

    def _held_by(self, caller: Hashable) -> int:
        every = [*self._sessions.values(), *(s for sessions in self._parked.values() for s in sessions)]
        return sum(1 for session in every if session.caller == caller)

    def _close_oldest_parked(self, caller: Hashable | None = None) -> None:
        """Make room for a new session: close the parked session used least recently (of `caller`'s,
        if given), if any."""
        oldest = min((s for sessions in self._parked.values() for s in sessions if caller is None or s.caller == caller),
                     key=lambda s: s.last_used, default=None)
        if oldest is not None:
            self._unpark(oldest)
            oldest.closing.set()

    def _release(self, session: _Session) -> None:
        session.released = True
        if not session.in_use:
            self._park_or_close(session)

    def _owner_gone(self, key: int) -> None:
        session = self._sessions.get(key)
        if session is not None and session.owner() is None:
            self._release(session)

    def _poke(self) -> None:
        self._changed.set()

    async def _expire_idle(self) -> None:
        while True:
            now = anyio.current_time()
            next_due = math.inf
            parked = [session for sessions in self._parked.values() for session in sessions]
            for session in [*self._sessions.values(), *parked]:
                if session.in_use or session.pinned or not session.ready.is_set():
                    continue
                due = session.last_used + self.idle_s
                if due <= now:
                    self._unpark(session)
                    session.closing.set()
                else:
                    next_due = min(next_due, due)
            self._changed = anyio.Event()
            with anyio.move_on_after(next_due - now if next_due < math.inf else math.inf):
                await self._changed.wait()
