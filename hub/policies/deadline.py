"""Every forwarded call has a deadline; on expiry the downstream call is cancelled."""

from __future__ import annotations

import anyio
import mcp_types as types

from hub.errors import HubToolError
from hub.policies.base import CallNext, ToolCall


async def deadline_policy(call: ToolCall, call_next: CallNext) -> types.CallToolResult:
    """Cancel the rest of the chain after `call.timeout_s` and report code `timeout`."""
    with anyio.move_on_after(call.timeout_s) as scope:
        return await call_next(call)
    assert scope.cancelled_caught
    raise HubToolError(
        "timeout",
        f"{call.route.exposed} did not answer within {call.timeout_s:g}s; the call was cancelled. "
        "Retry later, or raise timeout_s for this server if it is legitimately slow.",
        details={"server": call.route.server, "timeout_s": call.timeout_s},
    )
