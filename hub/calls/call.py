"""One call's state as it travels the pipeline (`hub.calls.pipeline`), and what it came to."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared.dispatcher import ProgressFnT

from hub.auth.principal import identity
from hub.catalog.catalog import ToolRoute
from hub.errors import HubRefusal, HubToolError
from hub.lifted import is_placeholder
from hub.redact import bounded_name
from hub.wire import ToolResult

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CODE_LIMIT = 64
"""A server's error code longer than this is kept cut (with a digest) in audit rows, metrics and log lines."""


def server_code(code: str) -> str:
    """A server's `structuredContent.code` as the hub records it: masked and bounded
    (`bounded_name`); one of 64 KiB or more, lifted out of a big line, is named, never its placeholder."""
    if is_placeholder(code):
        return "(a code of 64 KiB or more)"
    return bounded_name(_CONTROL.sub("?", code), CODE_LIMIT)  # no escape sequence or line break reaches a log

def caller_identity(call: ToolCall) -> tuple[str, str] | None:
    """The identity of the call's caller (`hub.auth.principal.identity`), if the call has one: what
    the server's stats, the bulkhead's shares and the breaker's attribution tell callers apart by."""
    caller = call.attributes.get("caller")
    return identity(caller) if caller is not None else None


now = time.monotonic
"""The clock of every policy and deadline: the asyncio loop's own (`loop.time()` is `time.monotonic()`,
what cancel-scope deadlines are compared against), read without anyio's per-call backend lookup."""


@dataclass(eq=False)
class ToolCall:
    """One call travelling through the pipeline: what was asked, its deadlines, and the permits it holds."""

    route: ToolRoute
    arguments: dict[str, Any]
    timeout_s: float
    """Idle deadline: seconds without an answer or a progress notification."""
    max_timeout_s: float
    """Hard deadline for the whole call, progress or not."""
    progress: ProgressFnT | None = None
    """The caller's progress listener (None: the caller asked for none)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Principal, caller, request id, attempt number, trace context."""
    deadline_at: float = math.inf
    """Absolute (`now()`) time the call must finish by; set by the deadline policy, moved by progress."""
    started_at: float = field(default_factory=now)
    """When the call started (`now()`): what its deadlines and its audited latency count from."""
    sent: Any = None
    """The attempt on the wire that the express driver sent and nobody has read the answer of yet
    (a `Pending`); the awaiting driver adopts it instead of sending again."""
    deadline_scope: anyio.CancelScope | None = None
    """The awaiting driver's cancel scope while it runs the call (`restart_deadline` and progress move it)."""
    probe_started_at: float = 0.0
    """When a half-open breaker let this call through as its probe (0.0: not a probe)."""
    held: list[tuple[Any, Any]] = field(default_factory=list)
    """(policy, permit) of each per-call policy that admitted the call, in order: where admission resumes."""
    attempt_held: list[tuple[Any, Any]] = field(default_factory=list)
    """The same for the current attempt's policies."""
    attempt: int = 0
    attempt_open: bool = False
    """An attempt is numbered and not yet settled."""
    attempt_sent_at: float = 0.0
    """When the current attempt went on the wire (0.0: not sent): what the server's stats count."""
    unsent: HubToolError | None = None
    """The refusal the deadline met the call with while its attempt still waited to go on the wire
    (a bulkhead queue, on a loop too late for the queue's own timer): answered instead of a
    `timeout`, and, being the hub's own refusal, counted by no breaker."""
    outcome: Outcome | None = None
    """What the call came to, once settled."""

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

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        """The server reported progress — the one place it is handled, whichever driver runs the
        call: the server is alive, so the idle deadline moves, and the caller hears it if it asked."""
        self.idle_deadline_from(now())
        if self.deadline_scope is not None:
            self.deadline_scope.deadline = self.deadline_at
        if self.progress is not None:
            await self.progress(progress, total, message)

    @property
    def retry_safe(self) -> bool:
        """Safe to send twice: read-only, idempotent, or carrying an idempotency key the tool declares
        (`ToolRoute.keyed`)."""
        if self.route.read_only or self.route.idempotent:
            return True
        key = self.arguments.get("idempotency_key")
        return self.route.keyed and isinstance(key, str) and key != ""


@dataclass(slots=True)
class Outcome:
    """What a call or an attempt came to: a result (`isError` or not), a hub error, or cancelled."""

    result: ToolResult | None = None
    error: HubToolError | None = None
    cancelled: bool = False
    refused: bool = False
    """The error is a policy's refusal at admission: nothing was sent, and it is final (never retried)."""

    @property
    def kind(self) -> str:
        """`ok`, `tool_error` (the server's `isError` answer), `error` (the hub's) or `cancelled`."""
        if self.cancelled:
            return "cancelled"
        if self.error is not None:
            return "error"
        assert self.result is not None
        return "tool_error" if self.result.is_error else "ok"

    @property
    def code(self) -> str | None:
        """The error code: the hub error's, or the one an `isError` result carries."""
        if self.error is not None:
            return self.error.body.code
        if self.result is not None and self.result.is_error:
            body = self.result.structured_content
            code = body.get("code") if isinstance(body, dict) else None
            return server_code(code) if isinstance(code, str) else None
        return None

    @property
    def hub_refusal(self) -> bool:
        """The hub refused without reaching the server (`HubRefusal`): no evidence about it."""
        return isinstance(self.error, HubRefusal)


CANCELLED = Outcome(cancelled=True)
