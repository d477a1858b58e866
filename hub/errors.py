"""Tool errors an agent can act on: `isError: true` with a small closed set of codes.

Every failure the hub reports about a call is a `CallToolResult` whose `structuredContent` is
`{code, message, retryable, retry_after_s?, details?}` (see DESIGN.md), with the same JSON in a
text block so clients that ignore structured content still show it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import mcp_types as types
from pydantic import BaseModel

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


def error_result(body: ToolErrorBody) -> types.CallToolResult:
    """Render an error body as an `isError` tool result."""
    payload = body.model_dump(exclude_none=True)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(payload))],
        structured_content=payload,
        is_error=True,
    )
