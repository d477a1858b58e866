"""`resources/read`, `prompts/get` and `completion/complete` asked of a server for a client.

Each goes on the caller's session (its own of a `per_client` server, `Downstream.session`), within its
deadline (`hub.downstream.request_deadline`), and fails as a JSON-RPC error whose `data` is the hub's
error body (`{code, message, retryable, ...}`; a timeout is -32001, the SDKs' request-timeout code).

A server's "session not found" (a `per_client` Streamable HTTP server that restarted: HTTP 404) means
it never handled the request, so these three are asked once more, on the new session, as the client's
own `resources/list` is (outside review recheck15 #10: a read was refused "session ended … call again").
That holds for `prompts/get` too: even a prompt with side effects runs once, the 404 having run nothing.
Limits (outside review isolation21 #2): each is charged to its caller's overall and the server's
rate-limit buckets (not to a tool rule: it names no tool) and holds a slot of the server's bulkhead,
shared with the tool calls by the same per-caller rules (`admitted`); refused as a tool call is.

Only `tools/call` and `tasks/*` answer the retryable `session_ended`: a tool's caller must learn that
the state its session held is gone, and a task lives on the session that ended.

Progress: when the client's request carried a `progressToken`, the server's progress for it is passed
on (`get_prompt`, `read_resource`, `complete` with `progress`); the SDK client's own methods take no
progress callback, so those requests are then sent as it sends them, with one (relay18 D4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import mcp_types as types
from mcp import Client
from mcp.client.session import _GetPromptResultAdapter, _ReadResourceResultAdapter
from mcp.shared.exceptions import MCPError
from mcp.shared.dispatcher import ProgressFnT

from hub.auth.principal import Principal, identity
from hub.downstream.connection import DownstreamUnavailable
from hub.downstream.owned import is_session_ended
from hub.downstream.owners import current_owner
from hub.downstream.request_deadline import ProgressDeadline, hard_limit, request_deadline, within_deadline
from hub.errors import HubRefusal, HubToolError
from hub.calls.call import now
from hub.relay.logs import with_log_level

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.downstream.connection import Downstream
    from hub.policies.bulkhead import BulkheadPolicy
    from hub.policies.ratelimit import RateLimitPolicy

T = TypeVar("T")


class Limits(Protocol):
    """Where a forwarded request's limits are held: the hub's (`hub.hub.Hub`)."""

    bulkheads: BulkheadPolicy
    rate_limits: RateLimitPolicy


def limits_of(hub: Any) -> Limits | None:
    """The hub's bulkheads and rate limits a read, prompt or completion is admitted by (`admitted`); None
    for an object without them (a bare `HubReads` in a test)."""
    return hub if hasattr(hub, "bulkheads") and hasattr(hub, "rate_limits") else None


async def ask(config: HubConfig, downstream: Downstream, principal: Principal, method: str,
              request: Callable[[Client, ProgressFnT | None], Awaitable[T]], progress: ProgressFnT | None = None,
              *, limits: Limits | None = None) -> T:
    """`request(client, progress)` (`method`) on the caller's live session of `downstream`, within its
    deadline, counted as `principal`'s on its client connection while it runs (`CallStats.asking`). The
    server's progress goes to `progress` (None: the client asked for none) and moves the deadline on.
    With `limits`: charged to the caller's rate limit and holding a slot of the server's bulkhead
    while it runs (`admitted`)."""
    seconds, setting = request_deadline(config.hub, downstream.config, method)
    clock = ProgressDeadline(seconds, *hard_limit(config.hub, downstream.config))  # its wait for a slot counts
    async with admitted(limits, downstream.name, principal, method, seconds):
        reported = clock.passing(progress)
        with downstream.stats.asking(identity(principal), current_owner()):
            return await within_request_deadline(config, downstream, method,
                                                 on_live_session(downstream, lambda client: request(client, reported)),
                                                 clock)


@asynccontextmanager
async def admitted(limits: Limits | None, server: str, principal: Principal, method: str,
                   wait_s: float, *, slot: bool = True, charge: bool = True) -> AsyncIterator[None]:
    """Admit a forwarded request as a tool call is admitted, but for what names a tool: the caller's
    overall and the server's rate-limit buckets (`RateLimitPolicy.check_request`; no tool rule applies),
    then a slot of the server's bulkhead by the same per-caller share, waited for at most `wait_s` (the
    request's deadline counts that wait, as a tool call's does). Refused with the JSON-RPC error carrying the same
    `rate_limited` / `unavailable` body (and `retry_after_s`) a tool call gets. Outside review
    isolation21 #2: reads, prompts and completions took no slot and no token, so one read-only caller
    flooded a shared server and another caller's tool call timed out. `slot`: False to charge the rate
    limit only; `charge`: False to hold a slot only (a `tasks/get` a `tasks/list` makes, the listing
    itself having been charged)."""
    if limits is None:
        yield
        return
    rate_limits = limits.rate_limits
    if charge and rate_limits.configured:
        refusal = await rate_limits.check_request(principal, server, method)
        if refusal is not None:
            raise jsonrpc_error(refusal)
    if not slot:  # charged, holding no slot (`tasks/result`: see `hub.relay.tasks`)
        yield
        return
    caller = identity(principal)
    refused = await limits.bulkheads.acquire(server, caller, now() + wait_s)
    if refused is not None:
        raise jsonrpc_error(refused)
    try:
        yield
    finally:
        limits.bulkheads.give_back(server, caller)


async def within_request_deadline(config: HubConfig, downstream: Downstream, method: str,
                                  work: Coroutine[Any, Any, T], clock: ProgressDeadline | None = None,
                                  started: float | None = None) -> T:
    """`work` (`method` to `downstream`) within the deadline of that request
    (`hub.downstream.request_deadline`), counted from `started` (the clock's start, or now); any failure
    as the JSON-RPC error the client gets."""
    seconds, setting = request_deadline(config.hub, downstream.config, method)
    try:
        return await within_deadline(downstream, method, work, seconds, setting, clock, started)
    except (DownstreamUnavailable, HubToolError) as exc:
        raise jsonrpc_error(exc) from exc


async def on_live_session(downstream: Downstream, request: Callable[[Client], Awaitable[T]]) -> T:
    """`request(client)` on the caller's session of `downstream`; once more, on a new session, when the
    server answered that it no longer knows the first (`is_session_ended`): it handled nothing."""
    for attempt in range(2):
        try:
            async with downstream.session() as client:
                return await request(client)
        except HubRefusal as exc:
            if attempt or not is_session_ended(exc):
                raise
    raise AssertionError("unreachable")


def jsonrpc_error(exc: DownstreamUnavailable | HubToolError) -> MCPError:
    """A failure of a forwarded request as the JSON-RPC error the client gets: "down" as it always read,
    a hub error (`timeout`, a `max_sessions` refusal, …) with its body as `data`."""
    if isinstance(exc, DownstreamUnavailable):
        return MCPError(code=types.INTERNAL_ERROR, message=f"{exc}; try again later")
    code = types.REQUEST_TIMEOUT if exc.body.code == "timeout" else types.INTERNAL_ERROR
    return MCPError(code=code, message=exc.body.message, data=exc.body.model_dump(exclude_none=True))



async def get_prompt(client: Client, name: str, arguments: dict[str, str] | None,
                     progress: ProgressFnT | None) -> types.GetPromptResult:
    """`prompts/get`, its progress to `progress` (None: the client asked for none)."""
    meta = with_log_level(None, client.protocol_version)  # a 2026-07-28 client's log opt-in (`hub.relay.logs`)
    if progress is None:
        return await client.get_prompt(name, arguments, meta=meta)

    async def send(answers: types.InputResponses | None, state: str | None) -> Any:
        params = types.GetPromptRequestParams(name=name, arguments=arguments, input_responses=answers, request_state=state,
                                              _meta=meta)
        return await client.session.send_request(types.GetPromptRequest(params=params), _GetPromptResultAdapter,
                                                 progress_callback=progress)

    return await client._drive_input_required(await send(None, None), send)  # type: ignore[no-any-return]  # noqa: SLF001 — as `Client.get_prompt`


async def read_resource(client: Client, uri: str, progress: ProgressFnT | None) -> types.ReadResourceResult:
    """`resources/read`, its progress to `progress` (None: the client asked for none)."""
    meta = with_log_level(None, client.protocol_version)  # a 2026-07-28 client's log opt-in (`hub.relay.logs`)
    if progress is None:
        return await client.read_resource(uri, meta=meta)

    async def send(answers: types.InputResponses | None, state: str | None) -> Any:
        params = types.ReadResourceRequestParams(uri=uri, input_responses=answers, request_state=state, _meta=meta)
        return await client.session.send_request(types.ReadResourceRequest(params=params), _ReadResourceResultAdapter,
                                                 progress_callback=progress)

    return await client._drive_input_required(await send(None, None), send)  # type: ignore[no-any-return]  # noqa: SLF001 — as `Client.read_resource`


async def complete(client: Client, ref: Any, argument: dict[str, str], context: dict[str, str] | None,
                   progress: ProgressFnT | None) -> types.CompleteResult:
    """`completion/complete`, its progress to `progress` (None: the client asked for none)."""
    meta = with_log_level(None, client.protocol_version)  # a 2026-07-28 client's log opt-in (`hub.relay.logs`)
    if progress is None and meta is None:
        return await client.complete(ref, argument, context_arguments=context)
    params = types.CompleteRequestParams(ref=ref, argument=types.CompletionArgument(**argument),
                                         context=types.CompletionContext(arguments=context) if context is not None else None,
                                         _meta=meta)
    return await client.session.send_request(types.CompleteRequest(params=params), types.CompleteResult,
                                             progress_callback=progress)
