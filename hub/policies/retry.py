"""Retry only where it is safe: a transient failure of a read-only or idempotent call.

Writes are never retried blindly — only when the caller supplied an `idempotency_key`.
Transient means `unavailable` (the connection was lost mid-call) or `rate_limited` (an `isError`
result carrying either code, as our domain servers return on a provider 429). Backoff is
exponential with full jitter, bounded in attempts, and every wait must end before the call's
deadline; a `retry_after_s` from the failure is honoured. A refusal the hub makes itself
(`HubRefusal`: server down or restarting, breaker open, queue full) is never retried: waiting
one out would spend the caller's deadline (and turn a probe into a call cut short), so the caller
gets it at once, with its `retry_after_s`, and decides.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import anyio

from hub.wire import ToolResult
from hub.settings import RetrySettings
from hub.errors import HubRefusal, HubToolError
from hub.policies.base import CallNext, ToolCall, now

logger = logging.getLogger("hub.retry")
TRANSIENT_CODES = frozenset({"unavailable", "rate_limited"})


def transient_result(result: ToolResult) -> tuple[bool, float | None]:
    """Whether an `isError` result reports a transient failure, and its `retry_after_s`."""
    body = result.structured_content if result.is_error else None
    if not isinstance(body, dict) or body.get("code") not in TRANSIENT_CODES:
        return False, None
    after = body.get("retry_after_s")
    return True, float(after) if isinstance(after, (int, float)) else None


class RetryPolicy:
    """Retries transient failures of retry-safe calls; settings come per server."""

    def __init__(self, settings_for: Callable[[str], RetrySettings], jitter: Callable[[], float] = random.random) -> None:
        self._settings_for = settings_for
        self._jitter = jitter

    async def __call__(self, call: ToolCall, call_next: CallNext) -> ToolResult:
        settings = self._settings_for(call.route.server)
        attempts = settings.max_attempts if call.retry_safe else 1
        attempt = 0
        while True:
            attempt += 1
            call.attributes["attempt"] = attempt
            failure: HubToolError | None = None
            try:
                result = await call_next(call)
                transient, retry_after = transient_result(result)
                if not transient:
                    return result
            except HubRefusal:
                raise  # the hub's own refusal (down, breaker open, queue full): at once, never waited out
            except HubToolError as exc:
                if exc.body.code not in TRANSIENT_CODES:
                    raise
                failure, retry_after, result = exc, exc.body.retry_after_s, None
            if attempt >= attempts:
                return _give_up(failure, result)
            backoff = self._jitter() * min(settings.max_delay_s, settings.base_delay_s * 2 ** (attempt - 1))
            delay = max(backoff, retry_after or 0.0)
            if now() + delay >= call.deadline_at:
                return _give_up(failure, result)
            logger.info("retrying %s (attempt %d of %d) in %.2fs", call.route.exposed, attempt + 1, attempts, delay)
            await anyio.sleep(delay)


def _give_up(failure: HubToolError | None, result: ToolResult | None) -> ToolResult:
    if failure is not None:
        raise failure
    assert result is not None
    return result
