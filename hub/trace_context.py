"""The caller's W3C trace context as a call carries it to `hub.telemetry` (kept apart from it: the
OpenTelemetry SDK is imported only when tracing is on).

A caller's context is `traceparent` and, with it, `tracestate` (vendor entries every participant passes
on, W3C Trace Context §3.3), read from `params._meta` or the HTTP request's headers; a `tracestate`
without a `traceparent` means nothing and is dropped. Outside review console26 #8: `tracestate` was lost
on the stdio front and from HTTP headers; #7: search mode's `call_tool` lost the header altogether."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TRACEPARENT = "traceparent"
"""The W3C header and `_meta` key; also the `ToolCall.attributes` key of a caller's trace context."""
TRACESTATE = "tracestate"


def carried_trace(get: Callable[[str], Any]) -> dict[str, str] | None:
    """{traceparent, tracestate} as `get` (headers' or `_meta`'s `.get`) has them, for a call's
    attributes; None when no `traceparent` is given."""
    parent = get(TRACEPARENT)
    if not isinstance(parent, str) or not parent:
        return None
    state = get(TRACESTATE)
    return {TRACEPARENT: parent, TRACESTATE: state} if isinstance(state, str) and state else {TRACEPARENT: parent}
