"""Circuit breakers: stop sending calls to a server that keeps failing, probe it after a cool-down.

closed → open after `failure_threshold` consecutive failures, or when at least `min_calls` calls
in the last `window_s` failed at `failure_rate` or more. Open fails fast with `unavailable` and
`retry_after_s`. After `cooldown_s` one probe call goes through (half-open): success closes the
breaker, failure opens it again. A tool error the server returns (`isError`) or a JSON-RPC error it
answers with is the server working and counts as success; timeouts, transport errors, crashes,
unreadable answers and HTTP 5xx count as failures;
refusals the hub makes itself (`HubRefusal`: down, restarting, queue full) count as nothing.

One caller must not open a server's breaker for everyone, nor hold it open (outside reviews: one
principal's slow ingests paused the memory server for all; two colluding principals opened it; a
failing caller, taken as the half-open probe each time, kept it open). So:
- a failure while another caller's latest call succeeded within `window_s` is its caller's own: it
  counts only against that caller, whose calls are paused for `cooldown_s` once
  `failure_threshold` of them failed in a row; the server's breaker is left as it was. A server
  that works for nobody (no other caller's success in the window) is judged as before;
- a timeout counts only when the server had the call for its whole `timeout_s` (not when the
  deadline was spent waiting for a bulkhead slot), and never when the server had asked the caller
  something meanwhile (an elicitation, sampling or roots request);
- while the breaker is open, a call of a caller whose own latest call did not fail (within
  `window_s + cooldown_s`) is let through at once as a probe (one such at a time), cool-down or
  not: a failing caller cannot keep the server from the others, whose first call finds out whether
  it works (on a server that is really down, each such caller spends one call finding out). The
  probe after the cool-down is anyone's, as before; a probe's verdict is remembered as its caller's
  (a probe given up without one, as a failure), and a probe that succeeds starts the window afresh. Only a probe moves an open or half-open
  breaker: an ordinary call admitted before it opened and ending now says nothing new;
- the calls one connection loss ends (a child's exit) are one event, judged by `hub.policies.crash_blame`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Literal

from hub.settings import BreakerSettings
from hub.errors import RESTARTED_BY_HUB, HubRefusal, HubToolError
from hub.calls.call import caller_identity
from hub.policies.base import GRANTED, Admission, Outcome, Permit, Phase, ToolCall, now
from hub.policies.crash_blame import LOST_WITH, CrashBlame

logger = logging.getLogger("hub.breaker")
BreakerState = Literal["closed", "open", "half_open"]
FAILURE_CODES = frozenset({"timeout", "unavailable", "upstream_error", "internal"})
"""The codes that count against a server. An HTTP server's 502/503/504 (`unavailable`) and other
4xx/5xx (`upstream_error`) do; its 401/403 (`unauthorized`/`forbidden`: it refused the hub's
configured credentials) and 429 (`rate_limited`) do not: the server is up and answering, an open
breaker would only hide the actionable error (fix the config; come back after `retry_after_s`)
behind "breaker open" (`hub.calls.errors.HTTP_STATUS_CODES`)."""


def answered_with_failure(outcome: Outcome) -> bool:
    """Whether an attempt's error is a verdict against the server (a timeout, a lost connection, an
    answer it could not give or the hub could not read, an HTTP 5xx); an answer the server gave —
    `isError`, or any JSON-RPC error it answered with (`details.jsonrpc_code`: -32602, -32042, and
    -32603, which the SDK's low-level server makes of every exception its handler raises on a bad
    input) — is not: the server is up and answering at once, failing fast already (outside review
    faults7 #4, again in faults15: five -32603s to one caller's bad inputs paused the whole server)."""
    error = outcome.error
    if error is None or error.body.code not in FAILURE_CODES:
        return False
    details = error.body.details or {}
    if details.get("reason") == RESTARTED_BY_HUB:  # the hub ended the connection itself (a console Restart)
        return False
    return not (error.body.code == "upstream_error" and "jsonrpc_code" in details)


PROBE = Permit()
"""The permit of the half-open breaker's one probe call after the cool-down."""
CLEAN_PROBE = Permit()
"""The permit of a probe let through at once for a caller whose own calls did not fail."""

BUCKETS = 30
"""The failure-rate window is kept as this many time buckets, not one entry per call."""

KEPT_CALLERS = 256
"""Callers' latest outcomes kept per server before the stale ones are dropped."""

Caller = tuple[str, str]


class CircuitBreaker:
    """The breaker for one server (time from an injectable clock, for tests)."""

    def __init__(self, name: str, settings: BreakerSettings, clock: Callable[[], float] = now) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.state: BreakerState = "closed"
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.transitions: list[tuple[BreakerState, BreakerState]] = []
        self._buckets: deque[list[float]] = deque()
        """[start, successes, failures] per 1/`BUCKETS` of the window: memory stays O(BUCKETS) at any call rate."""
        self._ok = 0
        self._failed = 0
        self._probe_in_flight = False
        self._clean_probe_in_flight = False
        self.latest: dict[Caller, tuple[bool, float]] = {}
        """Each recent caller's latest verdict (success, when): who a failure belongs to."""
        self.caller_failures: dict[Caller, int] = {}
        """Consecutive failures of each caller that were its own."""
        self.paused: dict[Caller, float] = {}
        """Callers whose own failures paused their calls, until when."""
        self.blame = CrashBlame(clock)
        """Connection losses: whose calls alone were lost (`hub.policies.crash_blame`)."""

    def paused_for(self, caller: Caller | None) -> float:
        """Seconds `caller`'s own calls stay paused (0: not paused)."""
        if caller is None or caller not in self.paused:
            return 0.0
        left = self.paused[caller] - self.clock()
        if left <= 0:
            del self.paused[caller]
            return 0.0
        return left

    def record_for(self, caller: Caller | None, success: bool) -> None:
        """Count a verdict of `caller`'s call: its own failure against it alone, else against the server."""
        if caller is None:
            self.record(success)
            return
        now = self.clock()
        if self.state != "closed":  # an ordinary call admitted before the breaker opened: nothing new of the
            if not success:  # server; and its success must not make its caller look clean (re-check A1)
                self._remember(caller, success, now)
            return
        own = not success and self._works_for_others(caller, now)
        self._remember(caller, success, now)
        if success:
            self.caller_failures.pop(caller, None)
        elif own:
            failures = self.caller_failures[caller] = self.caller_failures.get(caller, 0) + 1
            if failures >= self.settings.failure_threshold:
                self.paused[caller] = now + self.settings.cooldown_s
                logger.warning("breaker for server %r: pausing one caller's calls for %.0fs (%d of its calls failed "
                               "in a row while other callers' succeeded)", self.name, self.settings.cooldown_s, failures)
            return
        self.record(success)

    def _works_for_others(self, caller: Caller, now: float) -> bool:
        """Another caller's latest call succeeded within the window."""
        since = now - self.settings.window_s
        return any(ok and when >= since for other, (ok, when) in self.latest.items() if other != caller)

    def suspect(self, caller: Caller | None) -> bool:
        """`caller`'s own latest call failed within `window_s + cooldown_s`: it may not be the clean
        probe (it would judge the server by its own failing calls); the gated one, after the cool-down."""
        if caller is None:  # a call without a caller (the hub's own) cannot be told clean
            return True
        latest = self.latest.get(caller)
        return latest is not None and not latest[0] and latest[1] >= self.clock() - self.settings.window_s - self.settings.cooldown_s

    def remember(self, caller: Caller, success: bool) -> None:
        """Keep `caller`'s latest verdict (a probe's too: who judged the server, and how)."""
        self._remember(caller, success, self.clock())

    def _remember(self, caller: Caller, success: bool, now: float) -> None:
        self.latest.pop(caller, None)
        self.latest[caller] = (success, now)  # newest last
        if len(self.latest) > KEPT_CALLERS:
            horizon = now - self.settings.window_s - self.settings.cooldown_s
            for other in [c for c, (_, when) in self.latest.items() if when < horizon]:
                del self.latest[other]
                self.caller_failures.pop(other, None)
            while len(self.latest) > KEPT_CALLERS:
                oldest = next(iter(self.latest))
                del self.latest[oldest]
                self.caller_failures.pop(oldest, None)
        for paused in [c for c, until in self.paused.items() if until <= now]:
            del self.paused[paused]

    def retry_after(self) -> float:
        return max(0.0, self.opened_at + self.settings.cooldown_s - self.clock())

    def admit(self) -> bool:
        """Whether a call may go through now; in half-open, only one probe at a time."""
        if self.state == "open":
            if self.retry_after() > 0:
                return False
            self._move("half_open", "cool-down over; letting one probe call through")
        if self.state == "half_open":
            if self._probe_in_flight or self.retry_after() > 0:  # (half-open early for a clean probe: not for this one)
                return False
            self._probe_in_flight = True
        return True

    def record(self, success: bool, probe: str | None = None) -> None:
        """Count a verdict. `probe`: "gated" (the probe let through after the cool-down), "clean" (a
        caller's whose calls did not fail, let through at once), "none" (an ordinary call); None
        infers it (the gated probe if one is out). Only a probe's verdict moves an open or half-open
        breaker: an ordinary call admitted before it opened and ending now says nothing new."""
        now = self.clock()
        if probe is None:
            probe = "gated" if self._probe_in_flight else "none"
        if probe == "gated":
            self._probe_in_flight = False
        elif probe == "clean":
            self._clean_probe_in_flight = False
        was_probe = probe != "none"
        self._slide(now)
        if not self._buckets or now >= self._buckets[-1][0] + self.settings.window_s / BUCKETS:
            self._buckets.append([now, 0, 0])
        self._buckets[-1][1 if success else 2] += 1
        if success:
            self._ok += 1
        else:
            self._failed += 1
        if success:
            self.consecutive_failures = 0
            if self.state != "closed" and was_probe:
                self._move("closed", "probe call succeeded")
                self._start_afresh()
            return
        self.consecutive_failures += 1
        if self.state != "closed":
            if was_probe:
                self._open("probe call failed")
        elif self._should_open():
            self._open(f"{self.consecutive_failures} consecutive failure(s), {self._failure_rate():.0%} of recent calls")

    def _start_afresh(self) -> None:
        """The server answered the probe: the failures that opened the breaker are history (kept,
        they would open it again at the next failure), and so are the callers' own."""
        self._buckets.clear()
        self._ok = self._failed = 0
        self.caller_failures.clear()
        self.paused.clear()
        for caller in [c for c, (ok, _) in self.latest.items() if not ok]:
            del self.latest[caller]

    def release(self, probe: str = "gated") -> None:
        """A probe ended without a verdict (the caller cancelled it, the hub refused it further in)."""
        if probe == "clean":
            self._clean_probe_in_flight = False
        else:
            self._probe_in_flight = False

    def admit_clean(self) -> bool:
        """While not closed: let a call of a caller whose own calls did not fail through as a probe at
        once, cool-down or not (one such at a time): a caller who failed cannot keep the server from
        the others that way, and the first clean caller finds out whether it works again."""
        if self._clean_probe_in_flight:
            return False
        if self.state == "open":
            self._move("half_open", "a caller whose calls did not fail is the probe")
        self._clean_probe_in_flight = True
        return True

    def _slide(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] < now - self.settings.window_s:
            _, ok, failed = self._buckets.popleft()
            self._ok -= int(ok)
            self._failed -= int(failed)

    def _failure_rate(self) -> float:
        calls = self._ok + self._failed
        return self._failed / calls if calls else 0.0

    def _should_open(self) -> bool:
        if self.consecutive_failures >= self.settings.failure_threshold:
            return True
        return self._ok + self._failed >= self.settings.min_calls and self._failure_rate() >= self.settings.failure_rate

    def _open(self, why: str) -> None:
        self.opened_at = self.clock()
        self._move("open", why)

    def _move(self, state: BreakerState, why: str) -> None:
        self.transitions.append((self.state, state))
        logger.warning("breaker for server %r: %s -> %s (%s)", self.name, self.state, state, why)
        self.state = state


class BreakerPolicy:
    """One `CircuitBreaker` per server, applied around every attempt.

    Only a verdict about the server counts: an answer (`isError` included) is a success; a timeout,
    a lost connection or a protocol error is a failure. A `HubRefusal` from further in (the server
    is down or restarting, the bulkhead is full) never reached the server and counts for nothing,
    so a crash and its restart window cannot open the breaker and lock the restarted server out.
    The call a half-open breaker lets through as its probe gets a full deadline of its own."""

    phase: Phase = "attempt"

    def __init__(self, settings_for: Callable[[str], BreakerSettings], clock: Callable[[], float] = now) -> None:
        self._settings_for = settings_for
        self._clock = clock
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, server: str) -> CircuitBreaker:
        found = self.breakers.get(server)
        if found is None:
            found = self.breakers[server] = CircuitBreaker(server, self._settings_for(server), self._clock)
        return found

    def admit(self, call: ToolCall) -> Admission:
        """Closed: go. Open (or half-open with its probe out): refused at once, never waited out.
        The cool-down over: this call is the probe, with a full deadline of its own."""
        breaker = self.breaker(call.route.server)
        if breaker.state == "closed":
            if breaker.paused and (wait := breaker.paused_for(caller := caller_identity(call))):
                assert caller is not None
                return (breaker.blame.refusal(call.route.server, caller, wait, breaker.paused[caller])
                        or _caller_paused(call.route.server, breaker, wait))
            return GRANTED
        if not breaker.suspect(caller_identity(call)) and breaker.admit_clean():
            call.restart_deadline()
            return CLEAN_PROBE
        if not breaker.admit():
            return open_refusal(call.route.server, breaker)
        if breaker.state == "half_open":
            call.restart_deadline()
            return PROBE
        return GRANTED

    async def wait(self, call: ToolCall) -> Permit | HubToolError:
        raise AssertionError("the breaker never waits")

    def settle(self, call: ToolCall, permit: Permit, outcome: Outcome) -> None:
        """Count the attempt: an answer is a success, a failure code a failure; a refusal of the hub
        or the caller's cancel counts nothing (a probe that never reached the server is released)."""
        breaker = self.breaker(call.route.server)
        if (outcome.cancelled or outcome.hub_refusal
                or (_timed_out(outcome) and (call.attributes.get(ASKED_CLIENT)
                                             or call.attributes.get(WIRE_S, math.inf) < WHOLE_TIMEOUT * call.timeout_s))
                or (outcome.error is not None and call.attributes.get(RELAY_REFUSED))):
            # A call that timed out after the server asked its caller something (an elicitation or
            # sampling request, perhaps never answered), or before the server had it for its whole
            # timeout (the deadline spent in a bulkhead queue), or failed while the hub refused the
            # server such a request, says nothing of the server: one caller must not open the breaker
            # for everyone that way (outside reviews).
            if permit is PROBE or permit is CLEAN_PROBE:
                breaker.release("clean" if permit is CLEAN_PROBE else "gated")
                if (caller := caller_identity(call)) is not None:
                    # A probe given up without a verdict (cancelled, say) makes its caller wait like one that
                    # failed: else cancelling one's own probes held the breaker half-open (re-check A1).
                    breaker.remember(caller, False)
            return
        success = not answered_with_failure(outcome)
        caller = caller_identity(call)
        if (permit is PROBE or permit is CLEAN_PROBE) and breaker.state != "closed":
            if caller is not None:
                breaker.remember(caller, success)
            breaker.record(success, "clean" if permit is CLEAN_PROBE else "gated")  # the probe judges the server
            return
        if permit is PROBE or permit is CLEAN_PROBE:  # another probe closed it meanwhile
            breaker.release("clean" if permit is CLEAN_PROBE else "gated")
        if not success and caller is not None and (lost_with := call.attributes.get(LOST_WITH)) is not None:
            breaker.blame.settle(breaker, caller, lost_with)  # one loss, whoever's calls it ended
        else:
            breaker.record_for(caller, success)


RELAY_REFUSED = "relay_refused"
"""`ToolCall.attributes` key: the hub refused the server a request to a caller while this attempt
ran (so a failure then may be the refusal's, not the server's)."""
ASKED_CLIENT = "asked_client"
"""`ToolCall.attributes` key: the server sent this call's caller a request during the attempt."""
WHOLE_TIMEOUT = 0.9
"""A timeout counts when the server had the call for at least this share of its `timeout_s` (the
rest allows for the hub's own moments between the call's start and its send)."""
WIRE_S = "wire_s"
"""`ToolCall.attributes` key: how long the attempt was with the server (`hub.calls.pipeline`)."""


def _timed_out(outcome: Outcome) -> bool:
    return outcome.error is not None and outcome.error.body.code == "timeout"


def _caller_paused(server: str, breaker: CircuitBreaker, wait: float) -> HubRefusal:
    """The refusal of a call whose caller's own calls to `server` keep failing while others' succeed."""
    return HubRefusal(
        "unavailable",
        f"your calls to server {server!r} keep failing ({breaker.settings.failure_threshold} or more in a row: "
        f"timeouts or errors) while another caller's call succeeded within the last {breaker.settings.window_s:g}s, "
        f"so yours are paused for {wait:.1f}s. "
        "Look at what the calls send (a smaller input, a narrower query), then retry after that.",
        retry_after_s=round(max(wait, 0.1), 1),
        details={"server": server, "reason": "breaker_open_for_caller"},
    )


def open_refusal(server: str, breaker: CircuitBreaker) -> HubRefusal:
    """The refusal of a call to a server whose breaker is open (or half-open with its probe out)."""
    wait = breaker.retry_after()
    if breaker.state == "half_open":
        why = "one probe call is testing whether it recovered"
    else:
        why = f"calls to it are paused for {wait:.1f}s"
    return HubRefusal(
        "unavailable",
        f"server {server!r} is failing; {why} (circuit breaker open). Retry after that, or carry on without it.",
        retry_after_s=round(max(wait, 0.1), 1),
        details={"server": server, "reason": "breaker_open", "breaker": breaker.state},
    )
