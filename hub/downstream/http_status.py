"""An HTTP downstream's answer that holds no JSON-RPC, kept for the caller instead of lost in the SDK's client.

The SDK's Streamable HTTP client answers a request refused with any status but 404 as JSON-RPC -32603
"Server returned an error response": the status, its reason and `Retry-After` were lost, so a 503
read as final and a 401 as the server's fault (outside review, faults round 15). It makes up -32600
for a redirect it does not follow, a content type that is neither JSON nor an event stream, and a
202 to a request: read as the server's own answer, those never counted against the breaker (outside
review recheck15 #7: a server serving only an SSO proxy's login page was never paused). The hub's
transport (`hub.downstream.http_listing_repair`) gives each such response a JSON-RPC error body
instead, which the SDK passes on as the answer: a sentence naming the status (and where a redirect
leads, what the content type was), and in `data` an `HttpStatus` that `hub.calls.errors` maps to a
code, with no `jsonrpc_code`. An error status keeps its status and headers (an httpx `Auth` flow
still sees its 401); an answer below 400 becomes a 200 (the SDK reads a 202's body as nothing).
404 is left to the SDK: with a session it is the session's end, without one the -32601 that makes
the hub retry a handshake as 2026-07-28 (`hub.downstream.era`).
"""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx2
import mcp_types as types
from pydantic import BaseModel, ValidationError

from hub.redact import mask

MARK = "mcp-hub/http-status"
ALWAYS_MAPPED = frozenset({401, 403, 429, 502, 503, 504})
"""Statuses whose meaning decides the caller's code whatever the body (a JSON-RPC error in it is kept
as the server's words); at any other status a JSON-RPC error body is the server's answer, as the SDK reads it."""
TRANSIENT = frozenset({429, 502, 503, 504})
"""Statuses whose `Retry-After` is kept."""
MAX_RETRY_AFTER_S = 300.0
"""A `Retry-After` is held to this: a caller is told of a wait it may plan for, never of a day."""
ERROR_BODY_BYTES = 64 * 1024
"""At most this much of an error response's JSON body is read (for a JSON-RPC error); more is no such error."""
SAID_CHARS = 200
"""A server's own error message is cut to this, on one line."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})
NoAnswer = Literal["redirect", "accepted", "content_type", "empty", "unanswered"]
"""Why an answer below 400 holds no JSON-RPC: a redirect the SDK does not follow, a 202 to a request,
a content type that is neither JSON nor an event stream, an empty JSON body, a JSON body holding no
answer to the request (a notification, an answer to another id: outside review faults19 #4, the call
waited out its deadline though nothing more could come on that POST)."""
LOST_MARK = "mcp-hub/response-lost"
"""The `data.by` of the error answer the hub makes for a request whose HTTP response was cut off
(`lost_answer`)."""


class HttpStatus(BaseModel):
    """The `data` of the error answer the hub makes for a request refused with an HTTP status."""

    by: Literal["mcp-hub/http-status"] = MARK
    status: int
    retry_after_s: float | None = None
    said: str | None = None
    """The server's own message, when the body held a JSON-RPC error (masked, one line, cut)."""
    problem: NoAnswer | None = None
    """Set for an answer below 400 that holds no JSON-RPC (`NoAnswer`)."""
    location: str | None = None
    """Where a redirect leads (masked; without userinfo, query or fragment)."""
    content_type: str | None = None
    """The media type of an answer that is neither JSON nor an event stream ("" when it named none)."""
    held: str | None = None
    """For `unanswered`: what the JSON body held instead of the answer."""

    @classmethod
    def of(cls, data: Any) -> HttpStatus | None:
        """The refusal an error answer's `data` describes, or None if it is not one of the hub's."""
        if not isinstance(data, dict) or data.get("by") != MARK:
            return None
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None

    @property
    def named(self) -> str:
        """`HTTP 503 Service Unavailable`, with the server's own words after a colon."""
        phrase = httpx2.codes.get_reason_phrase(self.status)
        head = f"HTTP {self.status} {phrase}".rstrip()
        return f"{head}: {self.said}" if self.said else head

    @property
    def when(self) -> str:
        return f"try again in {self.retry_after_s:g}s" if self.retry_after_s is not None else "try again later"

    def sentence(self) -> str:
        """What happened, to follow "server 'x' ", with what to do."""
        if self.problem is not None:
            return self._no_answer()
        status = self.status
        if status == 401:
            return (f"refused the credentials the hub sends it ({self.named}): the hub's operator must check the "
                    "`headers` configured for this server in the hub's config; calling again will not help")
        if status == 403:
            return (f"refused the call with the credentials the hub sends it ({self.named}): they lack a permission "
                    "it needs; the hub's operator must check the `headers` configured for this server in the hub's config")
        if status == 429:
            return f"is rate limiting the hub's calls ({self.named}); {self.when}"
        if status in TRANSIENT:
            return f"is unavailable ({self.named}); {self.when}"
        if status >= 500:
            return f"failed the call ({self.named}); if it keeps failing, the server's operator must look at its logs"
        return f"refused the request the hub sent ({self.named}); check the `url` configured for this server"

    def _no_answer(self) -> str:
        not_mcp = "or the `url` configured for it is not its MCP endpoint: check it"
        if self.problem == "redirect":
            return (f"redirects the hub's requests to {self.location} ({self.named}), which the hub does not follow: "
                    "if that is its MCP endpoint, configure that final URL as this server's `url` in the hub's config; "
                    "if it is a sign-in page, a proxy in front of the server wants a login the hub cannot give")
        if self.problem == "accepted":
            return f"answered the call with {self.named} and no answer, as if it were a notification: the server has a bug, {not_mcp}"
        if self.problem == "unanswered":
            return (f"answered the call with a JSON body ({self.named}) holding {self.held or 'no answer'} instead of "
                    "the answer to it, and nothing more can come on that request: the server has a bug, report it to its authors")
        if self.problem == "empty":
            return f"answered with an empty body ({self.named}), not JSON-RPC: the server has a bug, {not_mcp}"
        kind = self.content_type or "no content type"
        return (f"answered with {kind} ({self.named}), not JSON-RPC: the `url` configured for this server may lead to a "
                "web page (a proxy's sign-in page?) instead of its MCP endpoint; check it")


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delay-seconds or an HTTP-date), held to
    [0, `MAX_RETRY_AFTER_S`]; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return round(min(max(seconds, 0.0), MAX_RETRY_AFTER_S), 3)


async def status_answer(response: httpx2.Response, request_id: int | str) -> httpx2.Response | None:
    """For a request (`request_id`) answered with a status of 400 or more (but 404, which the SDK
    reads as the session's end): a response at that status whose body is the JSON-RPC error answering
    it; None to leave it to the SDK as it came. A JSON-RPC error in a body at a status not in
    `ALWAYS_MAPPED` is the server's answer, and passed on as it came."""
    status = response.status_code
    if status < 400 or status == 404:
        return None
    body = await _error_body(response)
    error = _jsonrpc_error(body) if body is not None else None
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _BODY_HEADERS]
    if error is not None and status not in ALWAYS_MAPPED:
        assert body is not None
        return httpx2.Response(status, headers=[*headers, (b"content-type", b"application/json")], content=body,
                               extensions=response.extensions)
    said = " ".join(mask(error.message).split())[:SAID_CHARS] if error is not None else ""
    after = retry_after_s(response.headers.get("retry-after")) if status in TRANSIENT else None
    refusal = HttpStatus(status=status, retry_after_s=after, said=said or None)
    return httpx2.Response(status, headers=[*headers, (b"content-type", b"application/json")],
                           content=_answer(request_id, refusal), extensions=response.extensions)


def no_answer(request: httpx2.Request, response: httpx2.Response) -> HttpStatus | None:
    """What an answer below 400 to a POST is if the SDK's client would make up a JSON-RPC error for it
    (`NoAnswer`), else None. Header checks only: the caller asks whether the POST carried a request."""
    status = response.status_code
    if status >= 400:
        return None
    if status in REDIRECTS and "location" in response.headers:
        target = _redirect_target(request, response)
        if target is None:
            return None  # one the SDK follows (a 307/308 within the origin)
        return HttpStatus(status=status, problem="redirect", location=target)
    if status == 202:
        return HttpStatus(status=status, problem="accepted")
    kind = response.headers.get("content-type", "").lower()
    if not kind.startswith(("application/json", "text/event-stream")):  # the SDK's own test
        return HttpStatus(status=status, problem="content_type", content_type=kind.split(";")[0].strip()[:SAID_CHARS])
    if kind.startswith("application/json") and response.headers.get("content-length", "").strip() == "0":
        return HttpStatus(status=status, problem="empty")
    return None


async def no_answer_response(response: httpx2.Response, request_id: int | str, found: HttpStatus) -> httpx2.Response:
    """A 200 whose body is the JSON-RPC error answering `request_id` with `found`; the response is closed unread."""
    await response.aclose()
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _BODY_HEADERS and k.lower() != b"location"]
    return httpx2.Response(200, headers=[*headers, (b"content-type", b"application/json")],
                           content=_answer(request_id, found), extensions=response.extensions)


def _redirect_target(request: httpx2.Request, response: httpx2.Response) -> str | None:
    """Where a redirect of a POST leads, for a message (masked; no userinfo, query or fragment), or None
    for one the SDK's client follows (`mcp.shared._httpx_utils.next_request_within_origin`: 307/308,
    which keep the method and body, within the request's origin, bringing no userinfo of its own)."""
    try:
        target = request.url.join(response.headers["location"])
    except (httpx2.InvalidURL, ValueError):
        return "(an unreadable Location)"
    sent = request.url
    same = (sent.scheme, sent.host, sent.port) == (target.scheme, target.host, target.port) or (
        sent.host == target.host and sent.scheme == "http" and sent.port is None
        and target.scheme == "https" and target.port is None)
    if response.status_code in (307, 308) and same and (not target.userinfo or target.userinfo == sent.userinfo):
        return None
    shown = str(target.copy_with(userinfo=b"", query=None, fragment=None))
    return mask(shown)[:SAID_CHARS]


_BODY_HEADERS = (b"content-length", b"content-type", b"content-encoding", b"transfer-encoding")


def lost_answer(request_id: int | str, why: str) -> bytes:
    """The JSON-RPC error answering `request_id` whose HTTP response was cut off (a body cut mid-way, a
    connection reset before the headers): the SDK's own {-32000, "Connection closed"}, which the call
    pipeline reads as a connection lost mid-call (`unavailable`), with `why` in `data` — for this request
    only: the session, shared by every call of a server, goes on (outside review faults19 #3)."""
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {
        "code": types.CONNECTION_CLOSED, "message": "Connection closed", "data": {"by": LOST_MARK, "why": why}}}).encode()


def unanswered_answer(request_id: int | str, status: int, held: str) -> bytes:
    """The JSON-RPC error answering `request_id`, whose JSON body held `held` instead of its answer."""
    return _answer(request_id, HttpStatus(status=status, problem="unanswered", held=held))


def _answer(request_id: int | str, refusal: HttpStatus) -> bytes:
    """The JSON-RPC error answering `request_id` with `refusal` (the hub's, not the server's)."""
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {
        "code": types.INTERNAL_ERROR, "message": f"the server {refusal.sentence()}",
        "data": refusal.model_dump(exclude_none=True)}}).encode()


async def _error_body(response: httpx2.Response) -> bytes | None:
    """The body of an error response if it is JSON of at most `ERROR_BODY_BYTES`, else None; the
    response is read (that far) and closed either way."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    pieces: list[bytes] = []
    size = 0
    try:
        if kind == "application/json":
            async for piece in response.stream:  # type: ignore[union-attr]
                pieces.append(piece)
                size += len(piece)
                if size > ERROR_BODY_BYTES:
                    return None
    except (httpx2.HTTPError, httpx2.StreamError):
        return None  # cut short, corrupt: no error to read in it
    finally:
        await response.aclose()
    return b"".join(pieces) if kind == "application/json" else None


def _jsonrpc_error(body: bytes) -> types.ErrorData | None:
    """The JSON-RPC error a body holds, read as the SDK reads it, or None."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError:
        return None
    return message.error if isinstance(message, types.JSONRPCError) else None
