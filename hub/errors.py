"""Tool errors an agent can act on: `isError: true` with a small closed set of codes.

Every failure the hub reports about a call is a `CallToolResult` whose `structuredContent` is
`{code, message, retryable, retry_after_s?, details?}` (see DESIGN.md), with the same JSON in a
text block so clients that ignore structured content still show it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import mcp_types as types
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
from pydantic import BaseModel, ValidationError

from hub.redact import mask

ErrorCode = Literal[
    "invalid_argument",
    "not_found",
    "conflict",
    "unauthorized",
    "forbidden",
    "rate_limited",
    "timeout",
    "unavailable",
    "upstream_error",
    "internal",
]

_RETRYABLE: frozenset[str] = frozenset({"rate_limited", "timeout", "unavailable"})
MESSAGE_LIMIT = 2000
"""Longer error messages are cut: they are for reading, and must never echo a huge input back."""


class ToolErrorBody(BaseModel):
    """The `structuredContent` of a failed call."""

    code: ErrorCode
    message: str
    retryable: bool
    retry_after_s: float | None = None
    details: dict[str, Any] | None = None


class HubToolError(Exception):
    """Raised inside the call path; becomes an `isError` result at the edge."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after_s: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if len(message) > MESSAGE_LIMIT:  # a message quoting a caller's megabyte must not return it whole
            message = f"{message[:MESSAGE_LIMIT]}… ({len(message) - MESSAGE_LIMIT} more characters cut)"
        super().__init__(message)
        self.body = ToolErrorBody(
            code=code,
            message=message,
            retryable=code in _RETRYABLE,
            retry_after_s=retry_after_s,
            details=details,
        )

    def to_result(self) -> types.CallToolResult:
        return error_result(self.body)


class HubRefusal(HubToolError):
    """A call the hub refused itself, without sending it: the server is down or restarting, its
    breaker is open, its bulkhead queue is full. Says nothing about the server's health, so no
    breaker counts it; and no retry waits it out — the caller gets it at once, with `retry_after_s`."""


URL_REQUIRED_REASON = "url_elicitation_required"
RESTARTED_BY_HUB = "restarted_by_hub"
"""`details.reason` of a call whose connection the hub itself ended while it ran
(`hub.downstream.forwarders.restarted_by_hub`): never counted against the server's breaker."""


class UrlElicitationRequired(HubToolError):
    """A server answered JSON-RPC -32042: the user must first open a URL (an OAuth sign-in, a payment)
    and the call be made again. A client that declared URL-mode elicitation gets the error as the
    server sent it (`as_mcp_error`, at the SDK front's edge); any other client this `unauthorized`
    result naming each URL. The server answered, so no breaker counts it (`unauthorized` is no failure)."""

    def __init__(self, server: str, message: str, elicitations: list[types.ElicitRequestURLParams]) -> None:
        self.server = server
        self.server_message = message
        self.elicitations = elicitations
        steps = "; ".join(f"{mask(e.message)} — open {e.url}" for e in elicitations)
        super().__init__("unauthorized", f"server {server!r} needs the user to complete a step in a browser before this "
                         f"call can go on ({mask(message)}): {steps}. Then call the tool again with the same arguments",
                         details={"server": server, "reason": URL_REQUIRED_REASON,
                                  "elicitations": [e.model_dump(mode="json", by_alias=True, exclude_none=True)
                                                   for e in elicitations]})

    def as_mcp_error(self) -> MCPError:
        """The JSON-RPC error the server answered (its message, its elicitations)."""
        return UrlElicitationRequiredError(self.elicitations, self.server_message)


def error_result(body: ToolErrorBody) -> types.CallToolResult:
    """Render an error body as an `isError` tool result."""
    payload = body.model_dump(exclude_none=True)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(payload))],
        structured_content=payload,
        is_error=True,
    )


MAX_DESCRIBED_ERRORS = 1000


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failure, unwrapping exception groups; never a traceback."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ValidationError) and exc.error_count():
        return f"{exc.title} is not valid: {first_problem(exc)}"[:300]  # the first line names only the model
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def first_problem(exc: ValidationError) -> str:
    """Where and what, of the first thing wrong (never the value: a server's answer may hold anything).
    Past `MAX_DESCRIBED_ERRORS` only the count: listing the errors costs more than finding them."""
    if exc.error_count() > MAX_DESCRIBED_ERRORS:
        return f"{exc.error_count()} problems"
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "the value"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"

