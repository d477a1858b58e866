"""Retry only where it is safe: a transient failure of a read-only or idempotent call.

Writes are never retried blindly — only when the caller supplied an `idempotency_key`.
Transient means `unavailable` (the connection was lost mid-call) or `rate_limited` (an `isError`
result carrying either code, as our domain servers return on a provider 429). Backoff is
exponential with full jitter, bounded in attempts, and every wait must end before the call's
deadline; a `retry_after_s` from the failure (a provider's 429/5xx, passed on at once by the
domain kit, which does not retry itself) is honoured: retries of provider errors happen once, here. A refusal the hub makes itself
(`HubRefusal`: server down or restarting, breaker open, queue full) is never retried: waiting
one out would spend the caller's deadline (and turn a probe into a call cut short), so the caller
gets it at once, with its `retry_after_s`, and decides.

The failure the loop does not try again is the call's answer, worded for what the call is
(`answer_of`): a write without a key lost in flight (a timeout, a crash, a lost connection after
it was sent) is told its outcome is unknown — not retryable, check before sending it again — and a
keyed one to send it again with the same key (outside review faults19 #1).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import anyio

from hub.errors import HubToolError, in_flight_answer
from hub.wire import ToolResult
from hub.settings import RetrySettings
from hub.policies.base import Outcome, ToolCall, now

logger = logging.getLogger("hub.retry")
TRANSIENT_CODES = frozenset({"unavailable", "rate_limited"})


def answer_of(call: ToolCall, error: HubToolError) -> HubToolError:
    """`error` as the caller is told it, once no retry follows (`hub.errors.in_flight_answer`)."""
    if error.lost_in_flight is None:
        return error
    return in_flight_answer(error, call.route.original, read_only=call.route.read_only or call.route.idempotent,
                            keyed=call.retry_safe, declares_key=call.route.keyed)


def answered(call: ToolCall, outcome: Outcome) -> None:
    """Word the error of a final outcome for the call (`answer_of`), in place: the breaker and the
    server's stats have already judged the attempt by what happened."""
    if outcome.error is not None and outcome.error.body.code in ("timeout", "unavailable"):
        outcome.error = answer_of(call, outcome.error)


def transient_result(result: ToolResult) -> tuple[bool, float | None]:
    """Whether an `isError` result reports a transient failure, and its `retry_after_s`."""
    body = result.structured_content if result.is_error else None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or code not in TRANSIENT_CODES:  # a server's code may be any JSON value
        return False, None
    after = body.get("retry_after_s")
    return True, float(after) if isinstance(after, (int, float)) else None


class RetryPolicy:
    """The loop between the per-call and the per-attempt policies: whether, and after how long, a
    finished attempt is tried again. Settings come per server; clock, jitter and sleep are injectable."""

    def __init__(self, settings_for: Callable[[str], RetrySettings], jitter: Callable[[], float] = random.random,
                 clock: Callable[[], float] = now, sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self._settings_for = settings_for
        self._jitter = jitter
        self._clock = clock
        self.sleep = sleep
        """What the awaiting driver waits with between attempts."""

    def wants(self, call: ToolCall, outcome: Outcome) -> bool:
        """Whether this attempt's outcome is one to retry, deadline aside (no jitter drawn)."""
        if outcome.error is not None:  # the cheap checks first: most outcomes are plain answers
            transient = outcome.error.body.code in TRANSIENT_CODES and not (outcome.refused or outcome.hub_refusal)
        else:
            transient = outcome.result is not None and outcome.result.is_error and transient_result(outcome.result)[0]
        return bool(transient) and call.retry_safe and call.attempt < self._settings_for(call.route.server).max_attempts

    def after(self, call: ToolCall, outcome: Outcome) -> float | None:
        """Seconds to wait before the next attempt, or None: the outcome is the call's answer.

        A `retry_after_s` the failure carries is waited (plus a jitter of at most `base_delay_s`,
        so callers told the same moment do not all return at once); without one, exponential
        backoff with full jitter up to `max_delay_s`. A wait that would not end before the
        call's deadline is not started: the failure is returned at once."""
        if not self.wants(call, outcome):
            answered(call, outcome)
            return None
        settings = self._settings_for(call.route.server)
        if outcome.error is not None:
            retry_after = outcome.error.body.retry_after_s
        else:
            assert outcome.result is not None
            retry_after = transient_result(outcome.result)[1]
        if retry_after is not None:
            delay = retry_after + self._jitter() * min(settings.base_delay_s, settings.max_delay_s)
        else:
            delay = self._jitter() * min(settings.max_delay_s, settings.base_delay_s * 2 ** (call.attempt - 1))
        if self._clock() + delay >= call.deadline_at:
            answered(call, outcome)
            return None
        logger.info("retrying %s (attempt %d of %d) in %.2fs", call.route.exposed, call.attempt + 1,
                    settings.max_attempts, delay)
        return delay
