"""A 2026-07-28 downstream's own `InputRequiredResult` on the hub's JSON call paths (stdio children,
in-process low-level servers), issue #19 item 3.

A 2026-07-28 server that needs input answers `tools/call` with `resultType: "input_required"`,
`inputRequests` (sampling / elicitation / roots requests keyed by its own ids) and a `requestState`,
and expects the same call again with `inputResponses` and the state echoed. On the HTTP/SSE paths
the SDK's `Client.call_tool` drives that loop through the downstream's callbacks; the JSON paths
leave the body as sent, so the hub drives it here, through the SAME relay callbacks a handshake-era
server's requests take (`hub.relay.requests`): each request goes to the client whose call is in
flight — a handshake-era client gets a real server→client request, a 2026-07-28 client an
`InputRequiredResult` of the hub's own (`hub.relay.input_required`) — with the relay's capability,
scope and audit rules (`relay:<kind>`). Then the call is sent again with the answers.

The requests are part of the answer to this one call, so they go to its client (`answering_for`),
also on a shared session with other callers' calls in flight (outside review relay26 D1: they were
refused as ambiguous).

Decisions: at most `MAX_ROUNDS` rounds (a server that keeps asking is an invalid result); a request
the relay refuses (capability missing, server not visible, the call ended) ends the call as an
`upstream_error` naming the refusal, worded as the hub's (`InputRefused`: the server did nothing
wrong) — the server is not sent a made-up answer; the requests of one round are answered one after
another (a user answers one prompt at a time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from pydantic import TypeAdapter, ValidationError

from hub.errors import HubToolError
from hub.relay.upstream import answering_for

MAX_ROUNDS = 16
_INPUT_REQUEST: TypeAdapter[types.InputRequest] = TypeAdapter(types.InputRequest)

SendAgain = Callable[[dict[str, Any], Any], Awaitable[Any]]
"""`send_again(input_responses, request_state)`: the same `tools/call` again, its answer as sent."""


class InputNotRelayed(RuntimeError):
    """The server's input request could not be read (an invalid result of the server's; the message says why)."""


class InputRefused(HubToolError):
    """A valid input request the call's client did not answer (the hub refused to relay it, or the client
    answered with an error): not the server's fault, so not worded as an invalid result."""

    def __init__(self, server: str, method: str, why: str) -> None:
        super().__init__("upstream_error", f"server {server!r} asked this call's client for {method} (an input-required "
                         f"answer), which was not answered: {why}", details={"server": server})


def asks_for_input(body: Any) -> bool:
    """Whether a `tools/call` answer is a 2026-07-28 `InputRequiredResult`."""
    return isinstance(body, dict) and body.get("resultType") == "input_required"


async def complete_input_rounds(server: str, callbacks: dict[str, Any], body: Any, send_again: SendAgain) -> Any:
    """`body`, or — while it asks for input — the answer after relaying its requests (`callbacks`: the
    downstream's relay callbacks) and sending the call again; `InputNotRelayed` (unreadable) or
    `InputRefused` (not relayed) when that fails."""
    rounds = 0
    while asks_for_input(body):
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise InputNotRelayed(f"server {server!r} still asked for input after {MAX_ROUNDS} rounds")
        requests = body.get("inputRequests") or {}
        if not isinstance(requests, dict):
            raise InputNotRelayed(f"server {server!r} sent inputRequests that are not an object")
        with answering_for(server):  # part of this call's answer: its client is asked (module doc)
            responses = {str(key): await _answer(server, callbacks, request) for key, request in requests.items()}
        body = await send_again(responses, body.get("requestState"))
    return body


async def _answer(server: str, callbacks: dict[str, Any], raw: Any) -> dict[str, Any]:
    try:
        request = _INPUT_REQUEST.validate_python(raw, by_name=False)
    except ValidationError as exc:
        raise InputNotRelayed(f"server {server!r} sent an input request the hub cannot read "
                              f"({exc.error_count()} problem(s))") from exc
    if isinstance(request, types.CreateMessageRequest):
        result = await callbacks["sampling_callback"](None, request.params)
    elif isinstance(request, types.ElicitRequest):
        result = await callbacks["elicitation_callback"](None, request.params)
    else:
        result = await callbacks["list_roots_callback"](None)
    if isinstance(result, types.ErrorData):
        raise InputRefused(server, request.method, result.message[:300])
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)  # type: ignore[no-any-return]
