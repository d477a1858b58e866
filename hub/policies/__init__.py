"""Policies wrapped around every forwarded call, each one piece that can be tested alone.

A policy is `async (call, call_next) -> CallToolResult`; the hub composes them outermost first
around the forwarding step: deadline → retry → circuit breaker → bulkhead → forward. Auth
scopes, rate limits and audit plug in here as they land.
"""

from hub.policies.base import CallNext, CallPolicy, ToolCall, compose, now
from hub.policies.breaker import BreakerPolicy, CircuitBreaker
from hub.policies.bulkhead import BulkheadPolicy
from hub.policies.deadline import deadline_policy
from hub.policies.retry import RetryPolicy

__all__ = [
    "BreakerPolicy",
    "BulkheadPolicy",
    "CallNext",
    "CallPolicy",
    "CircuitBreaker",
    "RetryPolicy",
    "ToolCall",
    "compose",
    "deadline_policy",
    "now",
]
