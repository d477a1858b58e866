"""Every forwarded call has a deadline; on expiry the downstream call is cancelled.

`timeout_s` is an idle timer: each progress notification from the server restarts it
(`ToolCall.on_progress`), but never past `max_timeout_s` from the start of the call. A half-open
breaker's probe restarts both from the moment it is let through (`ToolCall.restart_deadline`).
This policy sets the deadline when the call is admitted and words the `timeout` error; the
drivers enforce it (the awaiting driver's cancel scope, the express driver's `DeadlineWatch`).
"""

from __future__ import annotations

from hub.errors import HubToolError
from hub.policies.base import GRANTED, Admission, NeverWaits, ToolCall, now
from hub.policies.breaker import WIRE_S
from hub.policies.retry import answer_of


class DeadlinePolicy(NeverWaits):
    """Sets each call's idle deadline from its start."""

    def admit(self, call: ToolCall) -> Admission:
        call.idle_deadline_from(call.started_at)
        return GRANTED


def timeout_error(call: ToolCall) -> HubToolError:
    """The `timeout` the caller gets when the deadline cancelled its call: the call had reached its
    server, so a write without an idempotency key is told its outcome is unknown, not to retry
    (`hub.policies.retry.answer_of`; outside review faults19 #1)."""
    elapsed = now() - call.started_at
    at_cap = call.deadline_at >= call.hard_deadline
    why = f"the {call.max_timeout_s:g}s hard limit" if at_cap else f"{call.timeout_s:g}s without an answer or progress"
    what = (f"server {call.route.server!r} timed out on {call.route.original} after {elapsed:.1f}s ({why}); "
            "the call was cancelled")
    error = HubToolError(
        "timeout", f"{what}. Retrying later may work; if the tool is legitimately slow, raise timeout_s.",
        details={"server": call.route.server, "timeout_s": call.timeout_s, "elapsed_s": round(elapsed, 3)},
        lost_in_flight=what if call.attempt_sent_at or WIRE_S in call.attributes else None,  # it went out
    )
    return answer_of(call, error)
