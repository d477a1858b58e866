"""The client call a task serves, so a request a server sends during it can find its way back.

Kept free of hub imports: the deadline policy reads it on every call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.auth.principal import Principal
    from hub.policies.base import ToolCall


@dataclass(eq=False)
class UpstreamCall:
    """One client's `tools/call` in flight to a server: where a request the server sends goes."""

    session: Any
    """The client's `mcp.server.session.ServerSession`."""
    request_id: Any
    principal: Principal
    server: str
    call: ToolCall | None = None
    """The hub's call, once the deadline policy saw it (so a relayed request can pause its idle timer)."""
    park: Any = None
    """For a 2026-07-28 client: `park(request, result_type)` sends a request through the input-required
    flow (`hub.relay.input_required`) instead of on a back-channel the client does not have."""
    relayed: dict[Any, RelayedRequest] = field(default_factory=dict)
    """Cancel scope → each request relayed for this call still waiting on the client: withdrawn when
    the last call it may belong to ends, so the client is told (`notifications/cancelled`) and nothing waits."""
    withdrawing: list[Any] = field(default_factory=list)
    """Settled events of the requests withdrawn when the call ended (awaited briefly: see `RequestRelay.tracked`)."""
    ended: str | None = None
    """Why the call ended while requests were pending: `timeout` (its deadline fired) or `cancelled`."""


@dataclass(eq=False)
class RelayedRequest:
    """A server's request relayed to a client, and the calls it may belong to: one connection's calls
    in flight to that server when it came (on a shared stdio session nothing says which of them asked).
    It is withdrawn when the last of them ends — not when a quicker sibling call does (outside review
    relay15: call A's question was withdrawn when call B, started after it, finished)."""

    scope: Any
    """Its cancel scope: cancelled to withdraw it."""
    settled: Any
    """Set once it is answered, refused or withdrawn."""
    holders: list[UpstreamCall]
    """The calls still in flight it may belong to."""
    ended: str | None = None
    """Why it was withdrawn: `timeout` (the last holder's deadline fired) or `cancelled`."""


current_upstream: ContextVar[UpstreamCall | None] = ContextVar("current_upstream", default=None)
"""The upstream call the running task serves (set only for clients that can answer a server's requests)."""


@dataclass(eq=False)
class KnownCall:
    """The call a server's input request answers, when the request says it: a 2026-07-28 server's own
    `InputRequiredResult` is the answer to one `tools/call` (`answering`)."""

    server: str
    upstream: UpstreamCall | None
    """That call as the relay tracks it; None: its client offered nothing a server could ask."""
    active: bool = True
    """False once its input rounds are over: a task started inside keeps no stale claim."""


answering: ContextVar[KnownCall | None] = ContextVar("answering", default=None)
"""Set while the hub relays the input requests of one call's `InputRequiredResult` (`answering_for`)."""


@contextmanager
def answering_for(server: str) -> Iterator[None]:
    """While the block runs, the relay sends `server`'s requests to the current call's client: they are
    part of the answer to that call, so on a shared session nothing is ambiguous (outside review relay26 D1:
    they were refused as "several callers in flight" and the caller got a misleading `upstream_error`)."""
    upstream = current_upstream.get()
    known = KnownCall(server, upstream if upstream is not None and upstream.server == server else None)
    token = answering.set(known)
    try:
        yield
    finally:
        known.active = False
        answering.reset(token)
