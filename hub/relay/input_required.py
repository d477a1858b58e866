"""The 2026-07-28 input-required flow (SEP-2322) for requests a server sends during a call.

A 2026-07-28 client has no channel for server→client requests: a server that needs input answers
`tools/call` with an `InputRequiredResult` (`inputRequests` + `requestState`) and the client calls
again with `inputResponses` and the `requestState` echoed. The SDK (mcp 2.3) drives that loop on the
client side (`Client.call_tool` dispatches the embedded requests through its callbacks and retries)
and lets a server handler return `InputRequiredResult`.

Through the hub (rules; docs/protocol.md, "2026-07-28 input-required flow"):
- A call from a 2026-07-28 client that declared sampling, elicitation or roots runs in the background
  ("parked"); the client's leg waits for the call's result or for the first request the server sends
  (relayed by `hub.relay.requests`, whatever era the server speaks), and gets the request back as an
  `InputRequiredResult` whose `requestState` is an unguessable id of the parked call.
- The client's next leg (`requestState` + `inputResponses`) answers the waiting server requests and
  waits again: for the result, or the next request. The hub's policies run once, on the parked call.
- A `requestState` is valid for the principal, tool and arguments that made it, on this hub process
  (no sticky sessions across replicas yet): anything else is -32602 naming what to do (outside review,
  relay round 7: a leg with other arguments got the first arguments' result).
- A leg that leaves a request it was asked unanswered (no `inputResponses` entry for its key) is
  asked it again at once, in a new `InputRequiredResult` (before, it waited for an answer that could
  not come until the call's hard deadline).
- Cancellation: a client leg that is cancelled (its stream closed, `notifications/cancelled`) abandons
  the call: the parked call is cancelled and forgotten. A server request withdrawn while waiting (the
  call's deadline fired, the server cancelled it) ends its round: it is never put to a later leg, and an
  answer to it is ignored (`hub.relay.requests` audits it `cancelled` / `timeout`).
- Deadlines: while the server waits for the user, the call's idle deadline is paused as for any relayed
  request; its hard deadline keeps running and ends a call whose client never comes back. A finished
  call nobody collected is dropped after `DONE_KEEP_S`; at most `MAX_PARKED_PER_CALLER` calls of one
  principal (beyond: its finished, uncollected ones make room, else the new call is refused
  `rate_limited`) and `MAX_PARKED` in all are kept — that bound takes the oldest of the principal
  holding the most (cancelled if still running), so one caller's flood never evicts another's call
  (outside review, isolation round 10: 1,000 calls of one key cancelled another's waiting on its user).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from hub.auth.principal import Principal, identity
from hub.errors import HubRefusal
from hub.policies.base import now
from hub.relay.fair_cap import FairCap

PROCESS_TAG = secrets.token_hex(4)
"""Begins every `requestState` this process makes: a leg that reaches another replica is told so."""
MAX_PARKED = 2000
MAX_PARKED_PER_CALLER = 200
DONE_KEEP_S = 300.0
"""How long a finished call whose client has not come back for it is kept."""

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
Park = Callable[[Any, Any], Awaitable[Any]]
"""`park(request, result_type)`: send a server's request through the input-required flow; its answer."""


@dataclass(eq=False)
class _Input:
    request: Any
    result_type: Any
    answered: anyio.Event = field(default_factory=anyio.Event)
    response: Any = None
    sent: bool = False
    withdrawn: bool = False
    """The server's request was withdrawn before it was answered: an answer to it is ignored."""


@dataclass(eq=False)
class ParkedCall:
    """A 2026-07-28 client's call running in the background between the legs of its input-required flow."""

    token: str
    principal: tuple[str, str]
    """Whose call it is (`identity`: the kind as well as the name, so a JWT `alice` is not API key `alice`)."""
    name: str
    arguments: str = ""
    """A digest of the call's arguments: a later leg must carry the same."""
    inputs: dict[str, _Input] = field(default_factory=dict)
    wake: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None
    ended_at: float | None = None
    report: Progress | None = None
    """The progress function of the client leg now waiting, if any."""
    log: Any = None
    """The log sender of the client leg now waiting, if any (`hub.relay.logs`: messages ride that leg)."""
    task: asyncio.Task[None] | None = None

    async def ask(self, request: Any, result_type: Any) -> Any:
        """Put a server's request to the client's next leg and wait for its answer."""
        entry = _Input(request, result_type)
        key = f"{self.name}-{len(self.inputs) + 1}"
        self.inputs[key] = entry
        self.wake.set()
        try:
            await entry.answered.wait()
        finally:
            if not entry.answered.is_set():  # withdrawn (call ended, server cancelled): the round ends
                entry.sent = entry.withdrawn = True
        return result_type.model_validate(entry.response, by_name=False)

    async def progress(self, value: float, total: float | None, message: str | None) -> None:
        if self.report is not None:
            await self.report(value, total, message)

    async def send_log(self, params: Any) -> None:
        """A downstream log message for this call: to the leg waiting now, else dropped (no stream)."""
        if self.log is not None:
            await self.log(params)


class InputRequiredCalls:
    """The parked calls of 2026-07-28 clients, by `requestState`."""

    def __init__(self) -> None:
        self._parked: FairCap[str, ParkedCall] = FairCap(MAX_PARKED_PER_CALLER, MAX_PARKED, on_evict=_cancel)

    @staticmethod
    def applies(protocol_version: str | None, session: Any, params: Any) -> bool:
        """Whether this `tools/call` takes the flow: a 2026-07-28 leg that carries a `requestState` or
        whose client declared something a server could ask of it."""
        if protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return False
        if isinstance(params, dict) and params.get("requestState") is not None:
            return True
        caps = session.client_capabilities
        return caps is not None and (caps.sampling is not None or caps.elicitation is not None or caps.roots is not None)

    async def call(self, params: dict[str, Any], name: str, principal: Principal, report: Progress,
                   run: Callable[[ParkedCall], Awaitable[Any]], log: Any = None) -> Any:
        """One leg: start the call (`run(parked)`) or answer its waiting requests; then the result or
        the next `InputRequiredResult`."""
        state = params.get("requestState")
        arguments = _digest(params.get("arguments"))
        if state is None:
            if not self._room_for(identity(principal)):
                return HubRefusal(
                    "rate_limited", f"you have {MAX_PARKED_PER_CALLER} calls waiting for their input (sampling, "
                    "elicitation, roots) on this hub; answer or abandon some of them before starting another",
                    retry_after_s=5.0, details={"reason": "calls_waiting_for_input"}).to_result()
            parked = self._park(name, principal, arguments)
            parked.task = asyncio.get_running_loop().create_task(self._run(parked, run))
        else:
            parked = self._resume(state, name, principal, arguments, params.get("inputResponses"))
        parked.report, parked.log = report, log
        try:
            return await self._next(parked)
        except anyio.get_cancelled_exc_class():  # the client abandoned the call: it ends, its requests too
            self._parked.pop(parked.token)
            if parked.task is not None:
                parked.task.cancel()
            raise
        finally:
            if parked.report is report:
                parked.report = parked.log = None

    def _park(self, name: str, principal: Principal, arguments: str) -> ParkedCall:
        parked = ParkedCall(f"{PROCESS_TAG}.{secrets.token_urlsafe(24)}", identity(principal), name, arguments)
        self._parked.put(parked.token, parked.principal, parked)
        return parked

    def _room_for(self, caller: tuple[str, str]) -> bool:
        """Whether `caller` may park one more call: at its share, a finished call nobody collected makes
        room (its oldest); one still running is never cancelled for a newcomer of the same caller — the
        newcomer is refused (re-check of round 12: a heavy caller's oldest running call was cancelled)."""
        self._sweep()
        if self._parked.count(caller) < MAX_PARKED_PER_CALLER:
            return True
        ended = next((p for p in self._parked.values_of(caller) if p.ended_at is not None), None)
        if ended is None:
            return False
        self._parked.pop(ended.token)
        return True

    def _resume(self, state: Any, name: str, principal: Principal, arguments: str, responses: Any) -> ParkedCall:
        parked = self._parked.get(state) if isinstance(state, str) else None
        if parked is None and isinstance(state, str) and _made_elsewhere(state):
            raise MCPError(code=types.INVALID_PARAMS, message="requestState was made by another hub process (another "
                           "replica, or before a restart): the call it belongs to runs there. With several replicas, "
                           "send a client's requests to one replica (docs/deploy.md); else call the tool again "
                           "without requestState and inputResponses")
        if parked is None or parked.principal != identity(principal) or parked.name != name:
            raise MCPError(code=types.INVALID_PARAMS, message="requestState is unknown or expired (or not this caller's "
                           "and tool's); call the tool again without requestState and inputResponses")
        if parked.arguments != arguments:  # the call goes on, waiting for a leg with its own arguments
            raise MCPError(code=types.INVALID_PARAMS, message=f"requestState belongs to a call of {name} with other "
                           "arguments; send the same arguments with it, or call the tool again without requestState "
                           "and inputResponses to start a new call")
        for key, response in (responses or {}).items() if isinstance(responses, dict) else ():
            entry = parked.inputs.get(key)
            if entry is not None and entry.sent and not entry.withdrawn and not entry.answered.is_set():  # others are ignored, as the spec says
                entry.response = response
                entry.answered.set()
        for entry in parked.inputs.values():  # left unanswered by this leg: asked again at once
            if entry.sent and not entry.withdrawn and not entry.answered.is_set():
                entry.sent = False
        return parked

    async def _run(self, parked: ParkedCall, run: Callable[[ParkedCall], Awaitable[Any]]) -> None:
        try:
            parked.result = await run(parked)
        except Exception as exc:  # noqa: BLE001 — handed to the client's leg, which raises it there
            parked.error = exc
        finally:
            parked.ended_at = now()
            parked.wake.set()

    async def _next(self, parked: ParkedCall) -> Any:
        while True:
            unsent = {key: entry for key, entry in parked.inputs.items() if not entry.sent}
            if unsent:
                for entry in unsent.values():
                    entry.sent = True
                return types.InputRequiredResult(input_requests={k: e.request for k, e in unsent.items()},
                                                 request_state=parked.token)
            if parked.ended_at is not None:
                self._parked.pop(parked.token)
                if parked.error is not None:
                    raise parked.error
                return parked.result
            parked.wake = anyio.Event()
            await parked.wake.wait()

    def _sweep(self) -> None:
        moment = now()
        for token, parked in self._parked.items():
            if parked.ended_at is not None and moment - parked.ended_at > DONE_KEEP_S:
                self._parked.pop(token)


def _made_elsewhere(state: str) -> bool:
    tag, dot, rest = state.partition(".")
    return bool(dot) and len(tag) == len(PROCESS_TAG) and tag != PROCESS_TAG and len(rest) >= 24


def _cancel(parked: ParkedCall) -> None:
    """A parked call a bound took (`FairCap`): cancelled if it still runs."""
    if parked.task is not None:
        parked.task.cancel()


def _digest(arguments: Any) -> str:
    """A digest of a leg's arguments, equal for equal JSON (keys in any order)."""
    text = json.dumps(arguments if arguments is not None else {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
