"""Tool calls the hub answers itself — search mode's meta-tools — audited and rate limited like any call.

`search_tools` is a `tools/call` a caller makes, and it costs the hub's CPU (BM25F, an embedding of the
query), so it is metered as one (outside review policies17 #3: it was neither charged nor audited):
- in the pipeline's order (`hub.calls.pipeline`): the audit store's `on_failure` (it only reads, so
  only `fail_closed` refuses it), its arguments, the caller's rate limit, then the work;
- the rate limit is the caller's overall bucket and any `rules` glob its name matches (no server
  bucket: no server is asked); arguments refused `invalid_argument` are audited, not charged, as a
  direct call's are;
- one audit row, metric and log line under its own name with no server; its arguments as every call's
  (names, values redacted, a keyed digest), so the query is stored only where `audit.keep_fields`
  names it (`{"search_tools": ["query"]}`), masked.
`call_tool` is not metered here: it is its target's call (`Hub.route_call`, charged and audited under the
target's name, a refused one too). Only its own malformed arguments (no `name`) are audited here, under
`call_tool`, as a direct call's invalid arguments are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import anyio
import mcp_types as types

from hub.auth.principal import Principal
from hub.calls.call import now
from hub.policies.audit import new_request_id, with_request_id
from hub.policies.ratelimit import call_identity

if TYPE_CHECKING:
    from hub.hub import Hub

Run = Callable[[], Awaitable[types.CallToolResult]]


async def answer_hub_tool(hub: Hub, tool: str, arguments: dict[str, Any], principal: Principal,
                          problem: types.CallToolResult | None, run: Run | None) -> types.CallToolResult:
    """Answer a call of the hub's own `tool`: `problem` (its arguments' `invalid_argument` result) if any,
    else `run` once the audit store and the caller's rate limit admit it; audited either way, with the
    request id in the result's `_meta`. `run` None: only a `problem` is answered (`call_tool`'s own)."""
    attributes: dict[str, Any] = {"principal": principal.name, "caller": principal, "request_id": new_request_id()}
    started = now()

    def answered(result: types.CallToolResult) -> types.CallToolResult:
        hub.auditor.hub_tool(attributes, tool, "tool_error" if result.is_error else "ok", _code(result),
                             now() - started, arguments)
        return cast(types.CallToolResult, with_request_id(result, attributes["request_id"]))

    def refused(result: types.CallToolResult) -> types.CallToolResult:
        hub.auditor.hub_tool(attributes, tool, "error", _code(result), now() - started, arguments)
        return cast(types.CallToolResult, with_request_id(result, attributes["request_id"]))

    if (down := hub.auditor.refusal_for(tool, read_only=True)) is not None:
        return refused(down.to_result())
    if problem is not None or run is None:
        assert problem is not None, "a hub tool without work answers only its arguments' problem"
        return refused(problem)
    if hub.rate_limits.configured:
        limited = await hub.rate_limits.check(call_identity(attributes), tool, None, read_only=True)
        if limited is not None:
            return refused(limited.to_result())
    try:
        result = await run()
    except anyio.get_cancelled_exc_class():
        hub.auditor.hub_tool(attributes, tool, "cancelled", None, now() - started, arguments)
        raise
    except Exception:
        hub.auditor.hub_tool(attributes, tool, "error", "internal", now() - started, arguments)
        raise
    return answered(result)


def _code(result: types.CallToolResult) -> str | None:
    body = result.structured_content if result.is_error else None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None
