"""Domain errors: raised by backends, returned to the agent as `isError` results with the hub's
error shape `{code, message, retryable, retry_after_s?, details?}`."""

from __future__ import annotations

from typing import Any

from hub.errors import ErrorCode, HubToolError


class DomainError(HubToolError):
    """A failure an agent can act on (same shape as the hub's own tool errors)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after_s: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code, message, retry_after_s=retry_after_s, details=details)


def not_found(kind: str, ident: str) -> DomainError:
    return DomainError("not_found", f"{kind} {ident!r} does not exist (check the id, or search first)")


def invalid(field: str, problem: str) -> DomainError:
    return DomainError("invalid_argument", f"{field}: {problem}", details={"field": field})
