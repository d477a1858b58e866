"""The one table from what forwarding a call can raise to the closed set of error codes.

Every forwarder (stdio JSON relay, in-process, SDK client over HTTP/SSE) raises what its transport
raises; the pipeline turns it into a `HubToolError` here and nowhere else. A server that is down
when the call would be sent is the hub's own refusal (`HubRefusal`: no evidence against it, never
retried); a call that never left the hub (`NotSent`, or the transport's not-sent answer: a refused
connect, a pipe already closed) is `unavailable`, retryable whatever the tool; a connection lost
mid-call is `unavailable` (retried when safe); a JSON-RPC error from the
server is `invalid_argument` for -32602, `UrlElicitationRequired` for -32042 (the user must open a
URL first), else `upstream_error`, its message saying by code what happened and what to do, then the
server's words (`answered_error`: an internal error or a timeout the server reported is no "rejection",
as it was worded before relay27 item 2); an unreadable result is
`upstream_error`. What the SDK's HTTP client makes up in place of an answer is read for what it is: an
HTTP error status by its meaning (`HTTP_STATUS_CODES`), a redirect, a web page or a 202 as an answer
holding no JSON-RPC (`upstream_error` naming the status and what to do), an event stream that ended
unanswered as a lost connection, an unreadable body or event stream in a few words. Anything else is
a bug of the hub and propagates (the front ends answer it as an internal error without detail).

What a server wrote (its error message, its stderr as a loss reason, a failure's text) is masked
(`hub.redact.mask`) before it enters the hub's own error message, as in the hub's log lines (outside
review: a password and a bearer token in a server's error message reached the caller unmasked).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
from pydantic import ValidationError

from hub.downstream.connection import Downstream, DownstreamUnavailable, describe_failure
from hub.downstream.http_status import HttpStatus
from hub.downstream.json_channel import ConnectionLost, ErrorAnswer, NotSent, not_sent_why
from hub.downstream.owned import session_ended, session_ended_by_server
from hub.frontends.stdio.line_errors import DROPPED_BY_HUB, overlong_message
from hub.errors import ErrorCode, HubRefusal, HubToolError, UrlElicitationRequired, first_problem
from hub.redact import mask

_EVENT_OVER_CAP = re.compile(r"^SSE stream failed: Server-sent event exceeded the ([0-9]+) byte limit")
"""How the SDK's Streamable HTTP client fails a request whose answering event is past its size limit
(`hub.downstream.connection` sets it to the line cap)."""
LOSS_REASON_WAIT_S = 1.0
"""How long to wait for the supervisor to learn why a connection closed (exit code, stderr)."""


async def _down(exc: BaseException, downstream: Downstream) -> HubToolError:
    if downstream.needs_operator:  # refused credentials, no such command: calling again will not help
        return HubRefusal("unavailable", f"{exc}; the hub's operator must fix this server's entry in the hub's config "
                          "(calling again will not help until then)", retryable=False,
                          details={"server": downstream.name, "reason": "down", "needs": "operator"})
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


NOT_SENT = "not_sent"
"""`details.reason` of a call that never left the hub (`not_sent`)."""


def not_sent(why: str, downstream: Downstream) -> HubToolError:
    """`unavailable`, retryable, for a call that failed before anything of it reached its server (`why`:
    the connection was refused, or already closed when it was to be written): whatever the tool, it did
    not run, so calling again is safe. Decision (outside review recheck21h #1): only a failure known to
    come before the write is this; any doubt is `lost_in_flight`. Counted by the breaker as any
    `unavailable` (a server refusing connections is failing), and retried where the call is retry-safe."""
    return HubToolError("unavailable", f"could not send the call to server {downstream.name!r} ({mask(why)}); nothing of "
                        "it reached the server, so it did not run: call again in a moment",
                        details={"server": downstream.name, "reason": NOT_SENT})


async def _not_sent(exc: BaseException, downstream: Downstream) -> HubToolError:
    assert isinstance(exc, NotSent)
    return not_sent(exc.why, downstream)


async def _mcp_error(exc: BaseException, downstream: Downstream) -> HubToolError:
    assert isinstance(exc, MCPError)
    if (why := not_sent_why(exc.error.data)) is not None:  # answered by the hub's transport: never sent
        return not_sent(why, downstream)
    if _connection_lost(exc):
        reason = await downstream.loss_reason(wait_s=LOSS_REASON_WAIT_S)
        return lost_in_flight(f"lost the connection to server {downstream.name!r} "
                              f"({mask(reason) if reason else 'connection closed'})", downstream)
    if not isinstance(exc, ErrorAnswer) and (stand_in := _http_failure(exc, downstream)) is not None:
        return stand_in
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
        return session_ended(downstream.name)
    code = "invalid_argument" if exc.code == types.INVALID_PARAMS else "upstream_error"
    return HubToolError(code, answered_error(downstream.name, exc.code, without_traceback(exc.error.message)),
                        details={"server": downstream.name, "jsonrpc_code": exc.code})


RESOURCE_NOT_FOUND = -32002
"""MCP's code for something a request names that the server does not have (the spec's `resources/read` error)."""
_AS_BEFORE = "calling again with the same arguments will most likely fail the same way"
ANSWERED_ERRORS: dict[int, tuple[str, str, str]] = {
    types.PARSE_ERROR: (
        "could not parse the call the hub sent it", "parse error",
        f"the hub sends well-formed JSON, so the server misread it: it has a bug, report it to its authors; {_AS_BEFORE}"),
    types.INVALID_REQUEST: (
        "refused the call as an invalid JSON-RPC request", "invalid request",
        "the fault is in the request's form, not in your arguments: the server may want something the hub does not "
        f"send, so the server's operator must look at its logs; {_AS_BEFORE}"),
    types.METHOD_NOT_FOUND: (
        "does not implement the method the call needs", "method not found",
        "it cannot run this tool, so calling again will not help: use another tool, or ask the hub's operator to check "
        "this server"),
    types.INVALID_PARAMS: (
        "refused the call's arguments as invalid", "invalid params",
        "correct them to match the tool's inputSchema (see tools/list) and call again"),
    types.INTERNAL_ERROR: (
        "failed while handling the call", "internal error",
        "the fault is in the server, not in how the hub sent the call; it may be an input the server did not expect, "
        "so check the arguments, else call again later, and if it keeps failing ask the server's operator to look at "
        "its logs"),
    types.REQUEST_TIMEOUT: (
        "reported that the call timed out on its side", "request timeout",
        "it may have done part of the work, so check before repeating a write; call again later, or with less to do "
        "(a smaller limit, range or input)"),
    RESOURCE_NOT_FOUND: (
        "answered that something the call names was not found", "resource not found",
        "check the identifiers or URIs in the arguments (list them first if you can) and call again"),
}
"""A JSON-RPC error a server answered a call with, by code: (what happened, the code's name, what to do)."""


def answered_error(server: str, code: int, message: str) -> str:
    """The caller's message for a JSON-RPC error `server` answered a call with: what happened (by `code`;
    none of these is the server "rejecting" the call as such), what to do, then the server's own words,
    masked and last (a long one cut at the length limit never cuts the advice). A code outside
    `ANSWERED_ERRORS` is the server's own error: its words say why."""
    known = ANSWERED_ERRORS.get(code)
    if known is not None:
        what, named, todo = known
        what = f"{what} ({named}, JSON-RPC {code})"
    else:
        kind = "a server error" if -32099 <= code <= -32000 else "an error of its own"
        what, todo = f"answered the call with {kind} (JSON-RPC {code})", f"its message says why; unless it says otherwise, {_AS_BEFORE}"
    said = mask(message).strip()
    return f"server {server!r} {what}: {todo}." + (f" The server said: {said}" if said else " The server gave no message.")


SDK_STREAM_ENDED = frozenset({"SSE stream ended without a response",
                              "SSE stream ended and reconnection attempts were exhausted"})
"""How the SDK's Streamable HTTP client fails a request whose event stream ended unanswered (-32000):
the server died or restarted mid-call, as a stdio child's exit (outside review, faults round 15)."""
SDK_STREAM_FAILED = "SSE stream failed: "
"""How the SDK's Streamable HTTP client fails a request whose event stream it could not read (-32000)."""
_UNPARSED = re.compile(r"^Failed to parse (?:JSON response|SSE message): ")
"""How the SDK's client fails a request whose answer it could not read (-32700), before pydantic's dump."""
_INVALID_JSON = re.compile(r"Invalid JSON: ([^\[\n]{1,160}?) \[type=json_invalid")


def _unparsed(message: str) -> str | None:
    """Why the SDK could not read an answer, in a few words (never the answer's bytes, which pydantic's
    dump quotes, nor its internals); None for a message that is no such failure."""
    if not _UNPARSED.match(message):
        return None
    if (invalid := _INVALID_JSON.search(message)) is not None:
        return f"it is not valid JSON: {invalid.group(1)}"
    if "validation error" in message:
        return "it is JSON, but not a JSON-RPC message"
    return "its body could not be read"


def _http_failure(exc: MCPError, downstream: Downstream) -> HubToolError | None:
    """The error for what the SDK's HTTP client made up in place of an answer — the hub's transport's
    answer to an HTTP error status or to an answer holding no JSON-RPC (a redirect, a web page, a 202),
    a stream that ended unanswered or could not be read, an unreadable body — or None. None carries a
    `jsonrpc_code`: the server sent none, and each counts against the breaker but 401/403/429."""
    if (status := HttpStatus.of(exc.error.data)) is not None:
        return _http_status(status, downstream)
    if exc.code == types.CONNECTION_CLOSED and exc.error.message in SDK_STREAM_ENDED:
        return lost_in_flight(f"lost the connection to server {downstream.name!r} (its event stream ended "
                              "before it answered: it may have crashed or restarted)", downstream)
    if (exc.code == types.CONNECTION_CLOSED and exc.error.message.startswith(SDK_STREAM_FAILED)
            and _EVENT_OVER_CAP.search(exc.error.message) is None):  # an event over the cap: named by `_mcp_error`
        why = " ".join(exc.error.message.removeprefix(SDK_STREAM_FAILED).split())[:160]
        downstream.log.warning("its event stream could not be read (%s); the call failed", why)
        return HubToolError("upstream_error", f"server {downstream.name!r} sent an event stream the hub cannot read "
                            f"({mask(why)}); the server has a bug: report it to its authors", details={"server": downstream.name})
    if exc.code == types.PARSE_ERROR and (unread := _unparsed(exc.error.message)) is not None:
        downstream.log.warning("its answer to a call could not be read (%s); the call failed", unread)
        return HubToolError("upstream_error", f"server {downstream.name!r} sent an answer the hub cannot read ({unread}); "
                            "the server has a bug: report it to its authors", details={"server": downstream.name})
    return None


HTTP_STATUS_CODES: dict[int, ErrorCode] = {401: "unauthorized", 403: "forbidden", 429: "rate_limited",
                                           502: "unavailable", 503: "unavailable", 504: "unavailable"}
"""An HTTP downstream's status → the caller's code; any other is `upstream_error`. 401/403 name the
hub's own credentials for the server (its config), never the caller's; neither they nor 429 count
against the breaker (`hub.policies.breaker.FAILURE_CODES`): the server is up and answering."""
_warned_once: weakref.WeakKeyDictionary[Downstream, set[int | str]] = weakref.WeakKeyDictionary()
"""What each server was logged for once: a status refusing its credentials, a kind of answer without JSON-RPC."""


def _http_status(status: HttpStatus, downstream: Downstream) -> HubToolError:
    """The error for a request the server refused with an HTTP status (`hub.downstream.http_status`);
    a refusal of the hub's credentials is logged once per server and status, for the operator."""
    code = "upstream_error" if status.problem is not None else HTTP_STATUS_CODES.get(status.status, "upstream_error")
    details: dict[str, Any] = {"server": downstream.name, "http_status": status.status}
    if status.problem is not None:  # no JSON-RPC in its answer: the operator is told once (per server and kind)
        details |= {"reason": "no_jsonrpc_answer", **({"location": status.location} if status.location else {}),
                    **({"content_type": status.content_type} if status.content_type is not None else {})}
        warned = _warned_once.setdefault(downstream, set())
        if status.problem not in warned:
            warned.add(status.problem)
            downstream.log.warning("it %s (its calls fail as server failures; logged once)", mask(status.sentence()))
    if code in ("unauthorized", "forbidden"):
        details["reason"] = "credentials_refused"
        warned = _warned_once.setdefault(downstream, set())
        if status.status not in warned:
            warned.add(status.status)
            downstream.log.warning("it refused the credentials the hub sends it (HTTP %d): check the `headers` "
                                   "configured for it; its calls fail until they are fixed (logged once)", status.status)
    return HubToolError(code, f"server {downstream.name!r} {mask(status.sentence())}",
                        retry_after_s=status.retry_after_s, details=details)


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


def lost_in_flight(what: str, downstream: Downstream) -> HubToolError:
    """`unavailable` for a connection lost while a request was on it (`what` happened): the server may
    have acted on it, so what the caller is told to do depends on the call (`hub.errors.in_flight_answer`:
    a write without a key is told its outcome is unknown, never "try again later")."""
    return HubToolError("unavailable", f"{what}; try again later", details={"server": downstream.name},
                        lost_in_flight=what)


async def _transport(exc: BaseException, downstream: Downstream) -> HubToolError:
    return lost_in_flight(f"lost the connection to server {downstream.name!r}: {mask(describe_failure(exc))}", downstream)


async def _invalid_result(exc: BaseException, downstream: Downstream) -> HubToolError:
    why = mask(first_problem(exc) if isinstance(exc, ValidationError) else describe_failure(exc))
    return HubToolError("upstream_error", f"server {downstream.name!r} returned an invalid result, not one MCP "
                        f"allows ({why}): the server has a bug, report it to its authors; {_AS_BEFORE}",
                        details={"server": downstream.name})


ERROR_TABLE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...],
                         Callable[[BaseException, Downstream], Awaitable[HubToolError]]], ...] = (
    (DownstreamUnavailable, _down),
    (NotSent, _not_sent),  # first: an `MCPError` and a `BrokenResourceError` known to come before the write
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
