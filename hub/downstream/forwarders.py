"""The forwarder: one attempt of a call, sent to its server and answered — nothing else.

The strict cut between the call pipeline (`hub.calls`) and the transports, as httpx's transport
base is for requests: the pipeline hands over a `ToolCall` whose policies all admitted it; the
forwarder sends it the fastest way the server allows and returns its result, or raises what the
transport raised (`hub.calls.errors` maps that to an error code, in one table). Three ways:

- stdio child: the request as one JSON line on the child's `JsonChannel`; `send_now` sends it from
  a callback (the express driver) and `adopt` awaits the answer of a call sent that way;
- in-process server: its tool awaited directly when nothing in its runner can reach it
  (`direct_tools`), else the SDK's direct dispatcher, result left as the server built it;
- HTTP/SSE: the SDK's client, the result passed on as the fields the server sent.

Every attempt carries the caller (`hub.auth.caller_channel`) and, with tracing on, the attempt's
trace context; progress always goes to `ToolCall.on_progress` (it is what keeps a slow call alive).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal
from hub.calls.call import ToolCall
from hub.calls.errors import NOT_SENT, forward_error
from hub.downstream.connection import Downstream
from hub.downstream.json_channel import Pending
from hub.downstream.owners import current_owner
from hub.downstream.request_deadline import unless_cancelled
from hub.errors import RESTARTED_BY_HUB, HubRefusal, HubToolError
from hub.relay.downstream_input import asks_for_input, complete_input_rounds
from hub.relay.logs import with_log_level
from hub.relay.upstream import answering_for
from hub.wire import ToolResult, as_sent, from_server, json_number, wire_result

if TYPE_CHECKING:
    from mcp.shared.dispatcher import ProgressFnT


class Forwarder:
    """Forwards attempts to the hub's downstreams (see the module)."""

    def __init__(self, downstreams: Mapping[str, Downstream], local: Principal, fast_calls: bool, tracing: Any = None) -> None:
        self.downstreams = downstreams
        self._local = local
        self._fast = fast_calls
        self.tracing = tracing
        """`hub.telemetry.CallTracing` or None: adds the attempt's `traceparent` to what is sent."""

    def downstream(self, call: ToolCall) -> Downstream:
        return self.downstreams[call.route.server]

    def send_now(self, call: ToolCall, on_answer: Callable[[dict[str, Any] | None], None]) -> Pending | None:
        """Send to a ready stdio child without waiting; None, nothing sent, if that cannot be done at once."""
        downstream = self.downstreams[call.route.server]
        meta = downstream.caller.meta(call.attributes["caller"])  # who is calling, signed (hub.auth.caller_channel)
        client = downstream.ready_now()
        channel = downstream.json_channel
        if client is None or channel is None or _owned(downstream):
            return None  # not a ready stdio child, or the caller's own session is wanted: nothing sent
        stamp = client.session._stamp  # noqa: SLF001 — the era's `_meta` envelope exactly as the SDK writes it
        params: dict[str, Any] = {"name": call.route.original, "arguments": call.arguments}
        meta = with_log_level(meta, client.protocol_version)  # a 2026-07-28 client's log opt-in (`hub.relay.logs`)
        if meta:
            params["_meta"] = meta
        return channel.send_now("tools/call", params, stamp, call.on_progress, on_answer)

    async def adopt(self, call: ToolCall) -> ToolResult:
        """The answer of the attempt `send_now` sent (`call.sent`), awaited."""
        sent, call.sent = call.sent, None
        sent.progress = call.on_progress  # progress from now on goes to the awaiting driver's call
        body = await sent.channel.result(sent)  # the channel it went out on
        downstream = self.downstreams[call.route.server]
        meta = downstream.caller.meta(call.attributes["caller"])
        return from_server(wire_result(await _with_input(downstream, call, body, meta)), call.route.namespace)

    async def forward(self, call: ToolCall) -> ToolResult:
        """Send one attempt and await its result (an in-process server's in a task of its own, so
        the call's deadline or cancel answers at once: `unless_cancelled`)."""
        downstream = self.downstreams[call.route.server]
        if downstream.config.transport == "inprocess":
            return await unless_cancelled(self._forward(call, downstream))
        return await self._forward(call, downstream)

    async def _forward(self, call: ToolCall, downstream: Downstream) -> ToolResult:
        caller: Principal = call.attributes.get("caller") or self._local
        meta = downstream.caller.meta(caller)
        if self.tracing is not None:  # the attempt's W3C trace context in `_meta.traceparent` (`hub.telemetry`)
            meta = self.tracing.downstream_meta(meta)
        original, arguments, namespace = call.route.original, call.arguments, call.route.namespace
        fast = self._fast and not _owned(downstream)
        with downstream.caller.bind(caller):
            if fast and (direct := downstream.direct) and direct.qualifies(original):
                return from_server(await direct.call(original, arguments), namespace)
            if fast and downstream.relays_json:
                body = await _call_json(downstream, original, arguments, call.on_progress, meta)
                return from_server(wire_result(await _with_input(downstream, call, body, meta)), namespace)
            # Parsed by the SDK client (HTTP, SSE, a per-client session): passed on as the fields the
            # server sent, no defaults added.
            async with downstream.session() as client:
                # A 2026-07-28 server's `InputRequiredResult` is driven by the SDK through the relay callbacks:
                # its requests answer this call, so they go to this call's client (`answering_for`).
                known = answering_for(downstream.name) if client.protocol_version in MODERN_PROTOCOL_VERSIONS else nullcontext()
                with known:
                    return from_server(as_sent(await client.call_tool(
                        original, arguments, progress_callback=_integral_progress(call.on_progress),
                        meta=with_log_level(meta, client.protocol_version))), namespace)

    async def error(self, call: ToolCall, exc: Exception) -> HubToolError:
        """What `exc`, raised while forwarding, means for the caller (`hub.calls.errors`): a connection
        the hub itself ended while the call ran (`ended_by_hub`) is `restarted_by_hub`."""
        downstream = self.downstreams[call.route.server]
        error = await forward_error(exc, downstream)
        ended = downstream.ended_by_hub
        if (error.body.code == "unavailable" and not isinstance(error, HubRefusal) and ended is not None
                and (error.body.details or {}).get("reason") != NOT_SENT  # never sent: no restart cut it off
                and call.attempt_sent_at and ended[0] >= call.attempt_sent_at):
            return restarted_by_hub(downstream.name, ended[1])
        return error


RESTART_RETRY_S = 1.0
"""The wait a call cut off by a Restart is told (and a retry-safe one waits) before calling again: about
what a stdio server takes to start."""


def restarted_by_hub(server: str, why: str) -> HubToolError:
    """The error of a call whose connection the hub itself ended while it ran (a console Restart or
    Disable, the hub stopping): retryable — a retry-safe call is tried again after `RESTART_RETRY_S`
    — and never counted against the server's breaker (`hub.policies.breaker.answered_with_failure`):
    before (outside review console15), a Restart with four calls in flight opened the breaker and
    refused every caller for a cool-down after the server was back."""
    what = f"the hub ended its connection to server {server!r} while this call ran ({why})"
    return HubToolError("unavailable", f"{what}; the call did not finish: call again once the server is back",
                        retry_after_s=RESTART_RETRY_S, details={"server": server, "reason": RESTARTED_BY_HUB},
                        lost_in_flight=what)  # a write may have landed: worded for the call (`hub.errors.in_flight_answer`)


async def _with_input(downstream: Downstream, call: ToolCall, body: Any, meta: dict[str, Any] | None) -> Any:
    """`body`, or, if a 2026-07-28 server asked for input, the answer once its requests were relayed
    and the call sent again with the answers (`hub.relay.downstream_input`)."""
    if not asks_for_input(body):
        return body

    async def again(responses: dict[str, Any], state: Any) -> Any:
        more = {"inputResponses": responses, **({"requestState": state} if state is not None else {})}
        return await _call_json(downstream, call.route.original, call.arguments, call.on_progress, meta, more)

    return await complete_input_rounds(downstream.name, downstream.relay_callbacks, body, again)


async def _call_json(downstream: Downstream, name: str, arguments: dict[str, Any], progress: ProgressFnT | None,
                     meta: dict[str, Any] | None, more: dict[str, Any] | None = None) -> Any:
    """`tools/call` with the result left as the JSON object the server sent (unchecked), stamped for
    the negotiated protocol era by the SDK session: on a stdio child's `JsonChannel`, else (in-process)
    through the SDK's direct dispatcher."""
    client = await downstream.ready_client()
    session = client.session
    params: dict[str, Any] = {"name": name, "arguments": arguments or {}, **(more or {})}
    meta = with_log_level(meta, client.protocol_version)  # a 2026-07-28 client's log opt-in (`hub.relay.logs`)
    if meta:
        params["_meta"] = meta
    stamp = session._stamp  # noqa: SLF001 — the era's `_meta` envelope exactly as the SDK writes it
    if (channel := downstream.json_channel) is not None:
        return await channel.request("tools/call", params, stamp, progress)
    data: dict[str, Any] = {"method": "tools/call", "params": params}
    opts: dict[str, Any] = {}
    stamp(data, opts)  # type: ignore[arg-type]
    if progress is not None:
        opts["on_progress"] = progress
    return await session._dispatcher.send_raw_request("tools/call", data["params"], opts)  # type: ignore[arg-type]  # noqa: SLF001


def _owned(downstream: Downstream) -> bool:
    """Whether this call goes to the caller's own session of a `per_client` server (`Downstream.session`)."""
    return downstream.pool is not None and current_owner() is not None


def _integral_progress(progress: ProgressFnT | None) -> ProgressFnT | None:
    """`progress`, given integral values as integers (`hub.wire.json_number`): the SDK client parses
    every progress number into a float, and the server's `1` must not reach the client as `1.0`."""
    if progress is None:
        return None

    async def report(value: float, total: float | None, message: str | None) -> None:
        await progress(json_number(value), None if total is None else json_number(total), message)

    return report
