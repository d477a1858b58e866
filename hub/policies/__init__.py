"""Two-phase policies around every forwarded call, each one piece that can be tested alone.

A policy admits synchronously (`admit`), waits only when it said it must (`wait`), and settles each
permit it granted exactly once (`settle`): `hub.policies.base`. Per call: audit, argument
validation, rate limit, deadline; per attempt: circuit breaker, bulkhead; retry is the loop
between the two. The order is stated once, in `hub.calls.pipeline`.
"""

from hub.policies.base import GRANTED, MUST_WAIT, MustWait, NeverWaits, Outcome, Permit, Policy, ToolCall, now
from hub.policies.breaker import BreakerPolicy, CircuitBreaker
from hub.policies.bulkhead import BulkheadPolicy
from hub.policies.deadline import DeadlinePolicy, timeout_error
from hub.policies.retry import RetryPolicy

__all__ = [
    "GRANTED",
    "MUST_WAIT",
    "BreakerPolicy",
    "BulkheadPolicy",
    "CircuitBreaker",
    "DeadlinePolicy",
    "MustWait",
    "NeverWaits",
    "Outcome",
    "Permit",
    "Policy",
    "RetryPolicy",
    "ToolCall",
    "now",
    "timeout_error",
]
