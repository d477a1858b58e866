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
        retryable: bool | None = None,
        lost_in_flight: str | None = None,
    ) -> None:
        if len(message) > MESSAGE_LIMIT:  # a message quoting a caller's megabyte must not return it whole
            message = f"{message[:MESSAGE_LIMIT]}… ({len(message) - MESSAGE_LIMIT} more characters cut)"
        super().__init__(message)
        self.body = ToolErrorBody(
            code=code,
            message=message,
            retryable=code in _RETRYABLE if retryable is None else retryable,
            retry_after_s=retry_after_s,
            details=details,
        )
        self.lost_in_flight = lost_in_flight
        """What happened, without advice, when the call may have reached its server and the failure
        says nothing of whether it took effect (a timeout, a connection lost mid-call); else None.
        What the caller is told to do then depends on the call (`in_flight_answer`)."""

    def to_result(self, output_schema: dict[str, Any] | None = None) -> types.CallToolResult:
        """The error as an `isError` result of a tool declaring `output_schema` (`error_result`)."""
        return error_result(self.body, output_schema)


class HubRefusal(HubToolError):
    """A call the hub refused itself, without sending it: the server is down or restarting, its
    breaker is open, its bulkhead queue is full. Says nothing about the server's health, so no
    breaker counts it; and no retry waits it out — the caller gets it at once, with `retry_after_s`."""


OUTCOME_UNKNOWN_ADVICE = ("whether it took effect is unknown. Check first (read back what it creates or changes: "
                          "look it up, list or search for it); send it again only if it did not happen")
"""What a caller is told of a write that may have reached its server before it was cut off. No word of
an idempotency key here: a resend is safe with one only where the tool declares it (outside review
recheck21h #2: a tool that ignores the key was told "it never runs twice", and a resend paid twice)."""
DECLARED_KEY_ADVICE = ("; this tool takes an idempotency_key: give one when sending it again, so that any later "
                       "resend with the same key never runs twice")
"""Added for a write whose tool declares `idempotency_key` but that was sent without one."""


def outcome_unknown_body(what: str, tool: str, code: ErrorCode = "unavailable",
                         details: dict[str, Any] | None = None, retry_after_s: float | None = None,
                         *, declares_key: bool = False) -> ToolErrorBody:
    """The error of a write cut off after it may have reached its server (`what` happened to it):
    not retryable, `details.outcome: "unknown"` — sending it again blindly could do it twice (outside
    review faults19 #1: a timeout or a crash mid-write said "try again later"; cluster round 18 #2,
    the same for a drain). One shape for the hub's stop (`hub.frontends.http.http_guard`) and for
    every call path (`in_flight_answer`). `declares_key`: the tool's input schema has `idempotency_key`
    (only then is a key mentioned; the drain, which does not know the schema, never mentions one)."""
    message = f"{what}: {OUTCOME_UNKNOWN_ADVICE}{DECLARED_KEY_ADVICE if declares_key else ''}."
    if len(message) > MESSAGE_LIMIT:
        message = f"{message[:MESSAGE_LIMIT]}… ({len(message) - MESSAGE_LIMIT} more characters cut)"
    return ToolErrorBody(code=code, message=message, retryable=False, retry_after_s=retry_after_s,
                         details={**(details or {}), "outcome": "unknown", "tool": tool[:128]})


def in_flight_answer(error: HubToolError, tool: str, *, read_only: bool, keyed: bool,
                     declares_key: bool = False) -> HubToolError:
    """What the caller is told of a call lost in flight (`HubToolError.lost_in_flight`): a read-only or
    idempotent call the error as it is (retryable); a write carrying an idempotency key its tool declares
    (`keyed`), to send it again with the same key; any other write, that its outcome is unknown
    (`outcome_unknown_body`; a key is mentioned only if the tool declares one, `declares_key` — a key the
    tool does not declare is ignored by it, and a resend with it runs twice). Any other error (a refusal
    before anything was sent, an answer) is returned as it is."""
    if error.lost_in_flight is None or read_only:
        return error
    body = error.body
    if keyed:
        again = HubToolError(body.code, f"{error.lost_in_flight}; it may have taken effect: send it again with the same "
                             "idempotency_key (it never runs twice)", retry_after_s=body.retry_after_s,
                             details=body.details, lost_in_flight=error.lost_in_flight)
        return again
    what = f"{error.lost_in_flight}; {tool[:128]} may have reached its server and taken effect"
    unknown = outcome_unknown_body(what, tool, body.code, body.details, declares_key=declares_key)
    answer = HubToolError(body.code, unknown.message, details=unknown.details, retryable=False)
    answer.body = unknown  # exactly the body built (its message already cut)
    return answer


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


def error_result(body: ToolErrorBody, output_schema: dict[str, Any] | None = None) -> types.CallToolResult:
    """Render an error body as an `isError` tool result: the body as JSON text, and as `structuredContent`
    unless the tool declares an `outputSchema` the body does not fit. The TypeScript SDK's client (Claude
    Code, the Inspector, every Node agent) checks an error result's structured content against the tool's
    output schema too, and throws `-32602 Structured content does not match` in place of the result, so
    the hub's message and `retryable` never reached the agent (outside review interop26 #1); the text
    still carries the whole body."""
    payload = body.model_dump(exclude_none=True)
    structured = payload if output_schema is None or fits_schema(payload, output_schema) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(payload))],
        structured_content=structured,
        is_error=True,
    )


_FITS: dict[str, bool] = {}
"""Whether an error body fits an output schema, by the schema's JSON and the body's keys (memoised: a
server's schemas are few, and a body's shape is what the schemas judge; bounded below)."""


def fits_schema(payload: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether `payload` validates against the JSON Schema `schema` (False for a schema that is not one)."""
    from jsonschema import validators
    from referencing import Registry

    try:
        key = json.dumps([schema, payload], sort_keys=True, default=str)
    except (TypeError, ValueError):
        return False
    known = _FITS.get(key)
    if known is not None:
        return known
    try:
        cls = validators.validator_for(schema)
        fits = not any(True for _ in cls(schema, registry=Registry()).iter_errors(payload))  # never fetches a `$ref`
    except Exception:  # noqa: BLE001 — a schema no validator takes (SchemaError, a bad $ref) is one the body does not fit
        fits = False
    if len(_FITS) >= 1024:
        _FITS.clear()
    _FITS[key] = fits
    return fits


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

