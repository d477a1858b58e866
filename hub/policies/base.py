"""The shape every call policy shares."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared.dispatcher import ProgressFnT

from hub.catalog import ToolRoute
from hub.wire import ToolResult


now = time.monotonic
"""The clock of every policy and deadline: the asyncio loop's own (`loop.time()` is `time.monotonic()`,
what cancel-scope deadlines are compared against), read without anyio's per-call backend lookup."""


@dataclass
class ToolCall:
    """One call travelling through the policy chain."""

    route: ToolRoute
    arguments: dict[str, Any]
    timeout_s: float
    """Idle deadline: seconds without an answer or a progress notification."""
    max_timeout_s: float
    """Hard deadline for the whole call, progress or not."""
    progress: ProgressFnT | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    """Scratch space for policies (principal, attempt number, ...)."""
    deadline_at: float = math.inf
    """Absolute (`now()`) time the call must finish by; set and moved by the deadline policy."""
    started_at: float = field(default_factory=now)
    """When the call started (`now()`): what its deadlines and its audited latency count from."""
    sent: Any = None
    """The first attempt, already sent downstream by the hub's express path (a `Pending`): the
    policies let it through as admitted — its breaker check passed and its bulkhead slot is held —
    and the forwarding step waits for its answer instead of sending again."""
    deadline_scope: anyio.CancelScope | None = None
    """The deadline policy's cancel scope while the chain runs the call (`restart_deadline` moves it)."""
    probe_started_at: float = 0.0
    """When a half-open breaker let this call through as its probe (0.0: not a probe). The probe's
    deadlines count from then, not from the call's start: it gets a full deadline of its own."""

    @property
    def hard_deadline(self) -> float:
        """`max_timeout_s` after the start (or the probe's start): progress never moves the deadline past this."""
        return max(self.started_at, self.probe_started_at) + max(self.max_timeout_s, self.timeout_s)

    def restart_deadline(self) -> None:
        """Give the call a full deadline from now — for the breaker's half-open probe, whose verdict
        must not come from the remains of a deadline spent before it (a retry's backoff, say)."""
        self.probe_started_at = now()
        self.idle_deadline_from(self.probe_started_at)
        if self.deadline_scope is not None:
            self.deadline_scope.deadline = self.deadline_at

    def idle_deadline_from(self, moment: float) -> None:
        """Set `deadline_at` to `timeout_s` after `moment` (the start, or the latest progress),
        capped at the hard deadline."""
        self.deadline_at = min(moment + self.timeout_s, self.hard_deadline)

    @property
    def retry_safe(self) -> bool:
        """Safe to send twice: read-only, idempotent, or carrying the caller's idempotency key."""
        key = self.arguments.get("idempotency_key")
        return self.route.read_only or self.route.idempotent or (isinstance(key, str) and key != "")


CallNext = Callable[[ToolCall], Awaitable[ToolResult]]
CallPolicy = Callable[[ToolCall, CallNext], Awaitable[ToolResult]]


def compose(policies: Sequence[CallPolicy], terminal: CallNext) -> CallNext:
    """Wrap `terminal` in `policies`, the first policy outermost."""
    call_next = terminal
    for policy in reversed(policies):
        call_next = _bind(policy, call_next)
    return call_next


def _bind(policy: CallPolicy, call_next: CallNext) -> CallNext:
    # A plain function handing back the policy's own coroutine: no extra coroutine per layer.
    return lambda call: policy(call, call_next)
