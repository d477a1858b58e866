"""A Streamable HTTP server's answer that it no longer knows the hub's session, in every shape it comes in.

The spec has a server answer a request naming a session it no longer knows (it restarted, or expired
it) with HTTP 404, and the SDK's client reads a bare 404 as -32600 "Session terminated". Servers in
the field say it otherwise: the TypeScript SDK's "with session management" example, copied by
server-everything and many others, answers HTTP 400 `{-32000, "Bad Request: No valid session ID
provided"}`; the TypeScript SDK's own transport 404 `{-32001, "Session not found"}` (or 400 "Server
not initialized" once restarted); Go servers 400 "Invalid session ID" as plain text; rmcp 401
"Unauthorized: Session not found". Read as the server's answer, such a 400 failed every call
`upstream_error` and opened the breaker, and the dead session was never replaced (outside review
interop16 #1).

The hub's transport (`hub.downstream.http_listing_repair`) asks `session_lost` of every 4xx answer to
a request that carried `Mcp-Session-Id`: a 404 (unless its body is a JSON-RPC error about something
else, such as -32601), or any other 4xx whose words say the session is unknown, invalid, expired or
missing. A 400 about the arguments is not: it names no session. Such an answer is then
- for a request, answered with `lost_answer`: -32600 "Session not found …", marked in `data`, which
  `hub.downstream.owned.session_ended_by_server` reads as the 404 it always read: the shared session
  reconnects, a per-client session is ended, and the request may be sent again on the new one;
- for a GET stream or a notification, which answer no request, reported to the session's
  `SessionWatch.on_lost`, with the same consequences.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

import httpx2
import mcp_types as types
from pydantic import ValidationError

from hub.downstream.listing_repair import ListingAnswers
from hub.redact import mask

MARK = "mcp-hub/session-lost"
SESSION_HEADER = "mcp-session-id"
BODY_BYTES = 64 * 1024
"""At most this much of a 4xx body is read for its words (a longer body is cut there: no such answer)."""
SAID_CHARS = 200
_TEXT_KINDS = ("application/json", "text/plain", "text/html", "")
_SESSION_GONE = re.compile(
    r"\b(?:no|invalid|missing|bad|not\s+a\s+valid)\s+(?:valid\s+|active\s+|mcp[- ])?session[- ]id\b"  # "No valid session ID provided"
    r"|\b(?:unknown|expired|stale)\s+(?:mcp[- ])?session\b(?!\W{0,3}(?:name|param|arg|field|key|type|value))"  # "unknown session"
    r"|\bsession(?:[- ]id)?\b\W{0,3}(?:[\w-]{1,80}\W{1,3})?(?:\w+\s+){0,2}"
    r"(?:not\s+found|expired|terminated|closed|does\s*n[o']t\s+exist|no\s+longer\s+(?:valid|exists?)"
    r"|not\s+recogni[sz]ed)\b"  # "Session not found", "session abc expired"
    r"|\bsession[- ]id\b\W{0,3}(?:\w+\s+){0,2}(?:is\s+)?(?:required|missing|invalid|unknown)\b"  # "Mcp-Session-Id header is required"
    r"|\bserver\s+not\s+initiali[sz]ed\b",  # the TypeScript SDK's transport after a restart
    re.IGNORECASE)
"""Words saying the session named is unknown to the server. A message about arguments names no session:
an argument called `session`, `session_id` or `sessionId` is not read as one — a session *id* is written
with a space or a hyphen, and "invalid"/"missing" count only for an id (re-checks 17 #3, 18)."""
ABOUT_ARGUMENTS = frozenset({types.PARSE_ERROR, types.METHOD_NOT_FOUND, types.INVALID_PARAMS})
"""JSON-RPC codes of an answer about the request itself, never about the session, whatever their words."""


class SessionWatch(ListingAnswers):
    """One session's listing answers (`ListingAnswers`), with `on_lost(why)` to call when the server
    answers that it no longer knows the session."""

    def __init__(self, log: logging.Logger, on_lost: Callable[[str], None] | None = None) -> None:
        super().__init__(log)
        self.on_lost = on_lost


def says_session_gone(text: str) -> bool:
    """Whether a server's words say the session it was sent is unknown, invalid, expired or missing."""
    return _SESSION_GONE.search(text) is not None


async def session_lost(request: httpx2.Request, response: httpx2.Response) -> tuple[str | None, httpx2.Response]:
    """For a 4xx to a request that carried `Mcp-Session-Id`: why the server no longer knows the session
    ("HTTP 400 Bad Request: …"), or None; and the response to go on with (its body read here, at most
    `BODY_BYTES`, is put back)."""
    status = response.status_code
    if not 400 <= status < 500 or not request.headers.get(SESSION_HEADER) or status in (408, 413, 429):
        return None, response
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _TEXT_KINDS or "content-encoding" in response.headers:
        return (_why(status, "") if status == 404 else None), response  # a body it cannot read: the status decides
    body, whole = await _read(response)
    again = httpx2.Response(status, headers=response.headers.raw, content=body, extensions=response.extensions)
    text = body.decode("utf-8", "replace")
    error = _jsonrpc_error(body) if kind == "application/json" else None
    said = error.message if error is not None else text
    if not whole or (error is not None and error.code in ABOUT_ARGUMENTS):
        return None, again
    if says_session_gone(said) or (status == 404 and error is None):
        return _why(status, said), again
    return None, again


def lost_response(request: httpx2.Request, status: int, why: str, request_id: int | str | None,
                  listings: ListingAnswers | None) -> httpx2.Response:
    """What the SDK gets for a request sent on a session the server no longer knows: a request
    (`request_id`) gets `lost_answer`, which its caller acts on (ending the session first would cut the
    answer off); a GET or a notification has the loss reported to the session's owner
    (`SessionWatch.on_lost`); the DELETE that ends the session anyway gets 204 (it is gone, as asked)."""
    if request.method == "DELETE":
        return httpx2.Response(204)
    if request_id is not None:  # its caller ends the session, once the SDK has the answer (`hub.downstream.owned`)
        return lost_answer(request_id, status, why)
    if isinstance(listings, SessionWatch) and listings.on_lost is not None:
        listings.on_lost(why)  # a GET stream's, a notification's: nobody else hears it
    return httpx2.Response(status)


def lost_answer(request_id: int | str, status: int, why: str) -> httpx2.Response:
    """The answer to a request sent on a session the server no longer knows: its JSON-RPC error
    -32600 "Session not found …" (as the SDK reads a 404), at the status it came with."""
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {
        "code": types.INVALID_REQUEST, "message": f"Session not found: the server no longer knows this session ({why})",
        "data": {"by": MARK, "status": status, "why": why}}}).encode()
    return httpx2.Response(status, headers=[(b"content-type", b"application/json")], content=body)


def is_lost_answer(data: object) -> bool:
    """Whether a JSON-RPC error's `data` is `lost_answer`'s."""
    return isinstance(data, dict) and data.get("by") == MARK


def lost_why(data: object) -> str:
    """What the server answered, from `lost_answer`'s `data` ("HTTP 400 Bad Request: …")."""
    return str(data.get("why") or "HTTP 404") if isinstance(data, dict) else "HTTP 404"


def _why(status: int, said: str) -> str:
    phrase = httpx2.codes.get_reason_phrase(status)
    words = " ".join(mask(said).split())[:SAID_CHARS]
    return f"HTTP {status} {phrase}".rstrip() + (f": {words}" if words else "")


async def _read(response: httpx2.Response) -> tuple[bytes, bool]:
    """The body, at most `BODY_BYTES` of it, and whether that is all of it; the response is closed."""
    pieces: list[bytes] = []
    size = 0
    whole = True
    try:
        async for piece in response.stream:  # type: ignore[union-attr]
            pieces.append(piece)
            size += len(piece)
            if size > BODY_BYTES:
                whole = False
                break
    except (httpx2.HTTPError, httpx2.StreamError):
        whole = False
    finally:
        await response.aclose()
    return b"".join(pieces)[:BODY_BYTES], whole


def _jsonrpc_error(body: bytes) -> types.ErrorData | None:
    """The JSON-RPC error a body holds (its `id` may be null: the request was refused before it was read)."""
    try:
        message = json.loads(body)
        return types.ErrorData.model_validate(message["error"]) if isinstance(message, dict) and "error" in message else None
    except (ValueError, RecursionError, TypeError, ValidationError):
        return None
