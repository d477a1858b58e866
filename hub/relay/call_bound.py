"""What a relayed server request does to the client calls it belongs to (rules in `hub.relay.requests`).

While it waits on the user its calls' idle deadlines are paused (`pause_idle_deadline`, `resume_idle_deadline`);
when the last call it may belong to ends it is withdrawn (`withdraw`); a client's progress for it goes back
to the server that asked (`progress_back`).
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.client.session import ClientRequestContext
from mcp.shared.dispatcher import ProgressFnT

from hub.policies.base import ToolCall, now
from hub.relay.upstream import UpstreamCall
from hub.wire import json_number

logger = logging.getLogger("hub.relay")


def withdraw(upstream: UpstreamCall) -> None:
    """The call ended: cancel the requests relayed for it that still wait on the client and belong to
    no other call in flight (`RelayedRequest`), noting why."""
    if not upstream.relayed:
        return
    call = upstream.call
    ended = "timeout" if call is not None and now() >= call.hard_deadline else "cancelled"
    for scope, relayed in list(upstream.relayed.items()):
        del upstream.relayed[scope]
        relayed.holders = [holder for holder in relayed.holders if holder is not upstream]
        if relayed.holders:
            continue  # another call of that connection may have asked it: it stays while that one runs
        relayed.ended = upstream.ended = ended
        upstream.withdrawing.append(relayed.settled)
        scope.cancel()


def pause_idle_deadline(call: ToolCall | None) -> ToolCall | None:
    """Let only the hard deadline run while the user answers (see the module's rules)."""
    if call is None or call.deadline_scope is None:
        return None
    call.deadline_scope.deadline = call.hard_deadline
    return call


def resume_idle_deadline(call: ToolCall) -> None:
    call.idle_deadline_from(now())
    if call.deadline_scope is not None:
        call.deadline_scope.deadline = call.deadline_at


def progress_back(server: str, ctx: ClientRequestContext | None, meta: Any) -> ProgressFnT | None:
    """Where a client's `notifications/progress` for a server's request goes: back to the downstream session
    that sent it, under the server's own token (outside review relay26 D3: the hub passed the token on and
    dropped the client's progress). None when the request asked for none, or came in an input-required
    answer (`ctx` None: no session to report to). The client sees a token of the hub's (`RequestRelay._relay`), so two
    servers' equal tokens never meet."""
    token = progress_token(ctx.meta if ctx is not None else None) or progress_token(meta)
    if ctx is None or token is None:
        return None
    downstream = ctx.session

    async def back(progress: float, total: float | None, message: str | None) -> None:
        try:
            await downstream.send_progress_notification(token, json_number(progress),
                                                        None if total is None else json_number(total), message)
        except Exception as exc:  # noqa: BLE001 — best effort, as progress is: the server's session may be gone
            logger.debug("progress for %s's request not passed on: %s", server, type(exc).__name__)

    return back


def progress_token(meta: Any) -> str | int | None:
    if isinstance(meta, dict):  # the SDK's `RequestParamsMeta` holds it by its Python name; a raw one by its wire name
        token = meta.get("progress_token", meta.get("progressToken"))
    else:
        token = getattr(meta, "progress_token", None)
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None


def connection_of(call: UpstreamCall) -> Any:
    """The client connection a call came on (its requests' sessions are views of it in SDK 2.x)."""
    return getattr(call.session, "_connection", None) or call.session

