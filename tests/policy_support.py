"""Shared pieces of the policy tests: a hand-moved clock, a call, and stand-ins for the forwarder."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from hub.catalog.catalog import ToolRoute
from hub.downstream.stats import CallStats
from hub.errors import HubRefusal, HubToolError
from hub.policies import ToolCall


class ManualClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_call(read_only: bool = True, timeout_s: float = 5.0, max_timeout_s: float = 10.0,
              arguments: dict[str, Any] | None = None, keyed: bool = False) -> ToolCall:
    """A call to `s__t`; `keyed`: the tool declares an `idempotency_key` argument (`ToolRoute.keyed`)."""
    tool = types.Tool(name="s__t", input_schema={"type": "object"})
    route = ToolRoute(exposed="s__t", server="s", original="t", tool=tool, read_only=read_only, keyed=keyed)
    return ToolCall(route, arguments or {}, timeout_s, max_timeout_s)


def down() -> HubRefusal:
    """What the forwarder raises for a server that is down: the hub's own refusal."""
    return HubRefusal("unavailable", "server 's' is down (restarting)", retry_after_s=0.5,
                      details={"server": "s", "reason": "down"})


def lost() -> HubToolError:
    """What the forwarder raises when the connection dies mid-call: evidence against the server."""
    return HubToolError("unavailable", "lost the connection to server 's'", details={"server": "s"})


def ok_result() -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])


Stats = CallStats
"""A downstream's call stats: the real ones (in flight per caller, refused requests)."""


class Script:
    """A forwarder (`hub.downstream.forwarders.Forwarder`'s interface) that plays its outcomes in
    order, one per attempt: a result, an exception to raise, or an async function of the call."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.attempts = 0
        self.stats = Stats()

    def downstream(self, call: ToolCall) -> Any:
        return self

    def send_now(self, call: ToolCall, on_answer: Any) -> None:
        return None  # the express driver then escalates: these tests run the awaiting driver

    async def forward(self, call: ToolCall) -> Any:
        self.attempts += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        if callable(outcome):
            return await outcome(call)
        return outcome

    async def error(self, call: ToolCall, exc: Exception) -> HubToolError:
        if isinstance(exc, HubToolError):
            return exc
        raise exc


def pipeline(*policies: Any, forwarder: Script, retry: Any = None) -> Any:
    """The awaiting driver over `policies` (each to its phase), no retries unless `retry` is given."""
    from hub.calls.drivers import Drivers
    from hub.calls.pipeline import Pipeline
    from hub.policies import RetryPolicy
    from hub.settings import RetrySettings

    retry = retry or RetryPolicy(lambda server: RetrySettings(max_attempts=1))
    return Drivers(Pipeline([p for p in policies if p.phase == "call"], [p for p in policies if p.phase == "attempt"],
                            retry, forwarder))  # type: ignore[arg-type]


async def run_call(call: ToolCall, *policies: Any, forwarder: Script, retry: Any = None) -> types.CallToolResult:
    """Run `call` through the awaiting driver; the answer (an error as its `isError` result)."""
    call.attributes.setdefault("request_id", "test")
    return await pipeline(*policies, forwarder=forwarder, retry=retry).run(call)


def code_of(result: Any) -> str | None:
    body = result.structured_content if result.is_error else None
    return body.get("code") if isinstance(body, dict) else None
