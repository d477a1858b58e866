"""Per-server call statistics for health reporting: in-flight, counts, latency percentiles."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ASKED_UNBOUND = object()
"""`CallStats.asked_by`'s key for a request without a client connection (a library call, a CLI command)."""


@dataclass
class CallStats:
    """Counters and a sliding window of recent call latencies (seconds)."""

    in_flight: int = 0
    callers: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Calls in flight per caller identity (`hub.auth.principal.identity`): whose call a shared
    session's log message can belong to (`hub.relay.logs`)."""
    asked_by: Counter[Any] = field(default_factory=Counter)
    """Prompts, reads and completions in flight per client connection (`asking`; `ASKED_UNBOUND` for one
    without a connection): whose request a server's question may be caused by (`hub.relay.requests`)."""
    relay_refusals: int = 0
    """Requests of this server to a caller that the hub refused (`hub.relay.requests`): a call failing
    around one says nothing of the server's health (`hub.policies.breaker`)."""
    calls: int = 0
    failures: int = 0
    on_timeout: Callable[[], None] | None = None
    """Told of each call that timed out on the wire (`hub.downstream.liveness`: is the server hung?)."""
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    _tasks: dict[int, tuple[tuple[str, str], float]] = field(default_factory=dict)
    """Tasks running on the server, by a token of `task_running`: (caller identity, monotonic bound)."""
    _task_serial: int = 0
    _cancels: dict[tuple[str, str], float] = field(default_factory=dict)
    """When each recent caller last cancelled a call the server had (`cancelled`)."""

    def task_running(self, caller: tuple[str, str], for_s: float) -> int:
        """A task of `caller` runs on the server (for at most `for_s` as far as the hub can tell: its ttl):
        what the server writes meanwhile may be that task's, so its caller counts as calling (`calling`).
        Re-check 20 #1: a line bob's task wrote reached alice, whose plain call happened to be in flight."""
        self._task_serial += 1
        self._tasks[self._task_serial] = (caller, time.monotonic() + for_s)
        return self._task_serial

    def task_done(self, token: int) -> None:
        self._tasks.pop(token, None)

    def cancelled(self, caller: tuple[str, str]) -> None:
        """`caller` cancelled a call the server had, or it timed out: its input may still be running there (a handler
        cannot always stop), so a loss within a minute counts it as on the wire (`recently_cancelled`;
        `hub.policies.crash_blame`: else the crasher whose slow call was given up on left the blame to whoever was
        on the wire when the process died)."""
        self._cancels[caller] = time.monotonic()
        if len(self._cancels) > 256:
            self._cancels.pop(next(iter(self._cancels)))

    def recently_cancelled(self, within_s: float = 60.0) -> set[tuple[str, str]]:
        """Callers that cancelled a call on the wire within the last `within_s`."""
        since = time.monotonic() - within_s
        return {caller for caller, at in self._cancels.items() if at >= since}

    def start(self, caller: tuple[str, str] | None = None) -> None:
        """A call went on the wire, for `caller` (an identity) if known."""
        self.in_flight += 1
        if caller is not None:
            self.callers[caller] += 1

    def finish(self, seconds: float, failed: bool, caller: tuple[str, str] | None = None) -> None:
        """A call counted in `in_flight` (by `start`, with the same `caller`) ended."""
        self.in_flight -= 1
        if caller is not None:
            self._uncount(caller)
        self.record(seconds, failed)

    def timed_out(self) -> None:
        """A call this server had on the wire timed out (after its `finish`)."""
        if self.on_timeout is not None:
            self.on_timeout()

    @contextmanager
    def asking(self, caller: tuple[str, str], connection: Any = None) -> Iterator[None]:
        """A request of `caller` on `connection` other than a tool call (a prompt, a resource read, a
        completion) is with the server: what the server asks or logs meanwhile may be that caller's too, so
        it counts in `callers` (outside review: a sampling request a prompt of bob's caused went to alice,
        whose call ran) and, per connection, in `asked_by` (relay18 D2: one caller's two connections are
        two places to ask). Not a call: in-flight and latency figures are the tool calls'."""
        key = connection if connection is not None else ASKED_UNBOUND
        self.callers[caller] += 1
        self.asked_by[key] += 1
        try:
            yield
        finally:
            self._uncount(caller)
            if self.asked_by[key] <= 1:
                del self.asked_by[key]
            else:
                self.asked_by[key] -= 1

    def askers(self) -> list[Any]:
        """The client connections with a prompt, read or completion in flight (`asking`)."""
        return list(self.asked_by)

    def _uncount(self, caller: tuple[str, str]) -> None:
        if self.callers[caller] <= 1:
            del self.callers[caller]
        else:
            self.callers[caller] -= 1

    def calling(self) -> set[tuple[str, str]]:
        """The identities with calls in flight, or tasks running (`task_running`)."""
        if not self._tasks:
            return set(self.callers)
        now = time.monotonic()
        for token in [t for t, (_, until) in self._tasks.items() if until <= now]:
            del self._tasks[token]
        return set(self.callers) | {caller for caller, _ in self._tasks.values()}

    def record(self, seconds: float, failed: bool) -> None:
        self.calls += 1
        self.failures += failed
        self._latencies.append(seconds)

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0..1) of recent latencies, or None before the first call."""
        if not self._latencies:
            return None
        ordered = sorted(self._latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
