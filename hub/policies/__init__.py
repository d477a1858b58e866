"""Policies wrapped around every forwarded call, each one piece that can be tested alone.

A policy is `async (call, call_next) -> CallToolResult`; the router composes them outermost
first around the forwarding step. Auth scopes, rate limits, retries, circuit breakers and audit
plug in here as they land; the deadline is the first.
"""

from hub.policies.base import CallNext, CallPolicy, ToolCall, compose
from hub.policies.deadline import deadline_policy

__all__ = ["CallNext", "CallPolicy", "ToolCall", "compose", "deadline_policy"]
