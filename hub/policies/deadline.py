"""Every forwarded call has a deadline; on expiry the downstream call is cancelled.

`timeout_s` is an idle timer: each progress notification from the server restarts it, but
never past `max_timeout_s` from the start of the call. A half-open breaker's probe restarts both
from the moment it is let through (`ToolCall.restart_deadline`).
"""

from __future__ import annotations

import anyio

from hub.wire import ToolResult
from hub.errors import HubToolError
from hub.policies.base import CallNext, ToolCall, now
from hub.relay.upstream import current_upstream


async def deadline_policy(call: ToolCall, call_next: CallNext) -> ToolResult:
    """Cancel the rest of the chain when the deadline passes and report code `timeout`."""
    started = call.started_at
    if call.sent is None:
        call.idle_deadline_from(started)
    # else: the express path set the deadline when it sent the call (and progress may have moved it)
    forward_progress = call.progress

    with anyio.CancelScope(deadline=call.deadline_at) as scope:
        # Progress is always asked of the server, listener or not: it is what keeps a slow call alive.
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            call.idle_deadline_from(now())
            scope.deadline = call.deadline_at
            if forward_progress is not None:
                await forward_progress(progress, total, message)

        call.progress = on_progress
        call.deadline_scope = scope
        if (upstream := current_upstream.get()) is not None:
            upstream.call = call  # a relayed sampling/elicitation pauses this call's idle timer (`hub.relay`)
        try:
            return await call_next(call)
        finally:
            call.progress = forward_progress  # the listener refers to the call: no cycle left behind
            call.deadline_scope = None

    elapsed = now() - started
    at_cap = call.deadline_at >= call.hard_deadline
    why = f"the {call.max_timeout_s:g}s hard limit" if at_cap else f"{call.timeout_s:g}s without an answer or progress"
    raise HubToolError(
        "timeout",
        f"server {call.route.server!r} timed out on {call.route.original} after {elapsed:.1f}s ({why}); "
        "the call was cancelled. Retrying later may work; if the tool is legitimately slow, raise timeout_s.",
        details={"server": call.route.server, "timeout_s": call.timeout_s, "elapsed_s": round(elapsed, 3)},
    )
