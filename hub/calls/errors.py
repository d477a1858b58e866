"""The one table from what forwarding a call can raise to the closed set of error codes.

Every forwarder (stdio JSON relay, in-process, SDK client over HTTP/SSE) raises what its transport
raises; the pipeline turns it into a `HubToolError` here and nowhere else. A server that is down
when the call would be sent is the hub's own refusal (`HubRefusal`: no evidence against it, never
retried); a connection lost mid-call is `unavailable` (retried when safe); a JSON-RPC error from the
server is `invalid_argument` for -32602, `UrlElicitationRequired` for -32042 (the user must open a
URL first), else `upstream_error`; an unreadable result is
`upstream_error`. Anything else is a bug of the hub and propagates (the front ends answer it as an
internal error without detail).

What a server wrote (its error message, its stderr as a loss reason, a failure's text) is masked
(`hub.redact.mask`) before it enters the hub's own error message, as in the hub's log lines (outside
review: a password and a bearer token in a server's error message reached the caller unmasked).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
from pydantic import ValidationError

from hub.downstream.connection import Downstream, DownstreamUnavailable, describe_failure
from hub.downstream.json_channel import ConnectionLost, ErrorAnswer
from hub.downstream.owned import session_ended_by_server
from hub.frontends.stdio.line_errors import DROPPED_BY_HUB, overlong_message
from hub.errors import HubRefusal, HubToolError, UrlElicitationRequired, first_problem
from hub.redact import mask

_EVENT_OVER_CAP = re.compile(r"^SSE stream failed: Server-sent event exceeded the ([0-9]+) byte limit")
"""How the SDK's Streamable HTTP client fails a request whose answering event is past its size limit
(`hub.downstream.connection` sets it to the line cap)."""
LOSS_REASON_WAIT_S = 1.0
"""How long to wait for the supervisor to learn why a connection closed (exit code, stderr)."""


async def _down(exc: BaseException, downstream: Downstream) -> HubToolError:
    wait = downstream.retry_after_s()
    return HubRefusal("unavailable", f"{exc}; retry in {wait:g}s", retry_after_s=wait,
                      details={"server": downstream.name, "reason": "down"})


def _connection_lost(exc: MCPError) -> bool:
    """Whether the call failed because the connection closed, not because the server answered an
    error: exact on the hub's own channel (shared stdio sessions); for the SDK's client (HTTP and
    SSE servers, per-client sessions), its own wording for a closed connection — so only a server
    answering exactly {-32000, "Connection closed"} over those is read as a loss."""
    if isinstance(exc, ConnectionLost):
        return True
    if isinstance(exc, ErrorAnswer):
        return False
    return exc.code == types.CONNECTION_CLOSED and exc.error.message == "Connection closed"


async def _mcp_error(exc: BaseException, downstream: Downstream) -> HubToolError:
    assert isinstance(exc, MCPError)
    if _connection_lost(exc):
        reason = await downstream.loss_reason(wait_s=LOSS_REASON_WAIT_S)
        return HubToolError("unavailable", f"lost the connection to server {downstream.name!r} "
                            f"({mask(reason) if reason else 'connection closed'}); try again later",
                            details={"server": downstream.name})
    if exc.data == DROPPED_BY_HUB:  # the server answered, but the hub could not pass the answer on
        return HubToolError("upstream_error", f"the answer of server {downstream.name!r} was dropped by the hub: "
                            f"{mask(exc.error.message)}", details={"server": downstream.name})
    if (over := _EVENT_OVER_CAP.search(exc.error.message)) is not None:  # the SDK's HTTP client refused an event
        return HubToolError("upstream_error", f"the answer of server {downstream.name!r} was dropped by the hub: "
                            f"{overlong_message('its answer (one event of its event stream)', int(over.group(1)))}",
                            details={"server": downstream.name})
    if (required := url_required(exc, downstream.name)) is not None:
        return required
    if downstream.pool is not None and session_ended_by_server(exc):  # a new session is opened on the next call
        return HubRefusal("unavailable", f"server {downstream.name!r} ended this client's session with it (restarted?); "
                          "call again: the next call opens a new one", retry_after_s=0.1,
                          details={"server": downstream.name, "reason": "session_ended"})
    code = "invalid_argument" if exc.code == types.INVALID_PARAMS else "upstream_error"
    return HubToolError(code, f"server {downstream.name!r} rejected the call: {mask(without_traceback(exc.error.message))}",
                        details={"server": downstream.name, "jsonrpc_code": exc.code})


MAX_REQUIRED_ELICITATIONS = 16
"""Of one -32042, at most this many elicitations are passed on and routed (a user opens each URL by
hand; a longer list is a server misbehaving, and its ids would crowd others' completions out)."""


@contextmanager
def sign_in_named(server: str) -> Iterator[None]:
    """A server's -32042 raised in the block as `UrlElicitationRequired` (its first elicitations), so the
    front end passes it on whole and routes its completions (`resources/read`, `prompts/get`: before,
    it passed through uncapped and its completions went nowhere)."""
    try:
        yield
    except MCPError as exc:
        required = url_required(exc, server)
        if required is None:
            raise
        raise required from None


def url_required(exc: MCPError, server: str) -> UrlElicitationRequired | None:
    """A server's -32042 with the elicitations it names (the first `MAX_REQUIRED_ELICITATIONS`); None
    for any other error, and when its `data` does not hold valid ones (then it is an error like any other)."""
    if exc.code != types.URL_ELICITATION_REQUIRED:
        return None
    try:
        elicitations = UrlElicitationRequiredError.from_error(exc.error).elicitations
    except (ValidationError, ValueError, TypeError, AttributeError):
        return None
    if not elicitations:
        return None
    return UrlElicitationRequired(server, exc.error.message, elicitations[:MAX_REQUIRED_ELICITATIONS])


TRACEBACK = "Traceback (most recent call last):"


def without_traceback(text: str) -> str:
    """A server's error text with a Python traceback in it cut to what precedes it and its last line
    (the exception): paths and code lines are the server's internals, never the caller's business
    (outside review, faults round 7)."""
    head, found, rest = text.partition(TRACEBACK)
    if not found:
        return text
    lines = [line.strip() for line in rest.splitlines() if line.strip()]
    if len(lines) == 1:  # written on one line: only a trailing `SomeError: message` is the exception
        exception = _EXCEPTION.search(lines[0])
        last = exception.group(0) if exception else ""
    else:
        last = lines[-1] if lines else ""
    return " ".join(part for part in (head.strip(), last, "(the server's traceback is not shown)") if part)


_EXCEPTION = re.compile(r"\b[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\b(?::[^\n]*)?$")


async def _transport(exc: BaseException, downstream: Downstream) -> HubToolError:
    return HubToolError("unavailable", f"lost the connection to server {downstream.name!r}: {mask(describe_failure(exc))}",
                        details={"server": downstream.name})


async def _invalid_result(exc: BaseException, downstream: Downstream) -> HubToolError:
    why = mask(first_problem(exc) if isinstance(exc, ValidationError) else describe_failure(exc))
    return HubToolError("upstream_error", f"server {downstream.name!r} returned an invalid result: {why}",
                        details={"server": downstream.name})


ERROR_TABLE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...],
                         Callable[[BaseException, Downstream], Awaitable[HubToolError]]], ...] = (
    (DownstreamUnavailable, _down),
    (MCPError, _mcp_error),
    ((anyio.BrokenResourceError, anyio.ClosedResourceError, OSError), _transport),
    (RuntimeError, _invalid_result),
    (ValidationError, _invalid_result),  # the SDK client's check of a result (a per-client session)
)
"""First match wins."""


async def forward_error(exc: Exception, downstream: Downstream) -> HubToolError:
    """The error a forwarding failure means for the caller; re-raises what the table does not know."""
    if isinstance(exc, HubToolError):
        return exc
    for kinds, make in ERROR_TABLE:
        if isinstance(exc, kinds):
            return await make(exc, downstream)
    raise exc
