"""Domain errors: raised by backends, returned to the agent as `isError` results with the hub's
error shape `{code, message, retryable, retry_after_s?, details?}`."""

from __future__ import annotations

from hub.argument_errors import preview
from hub.errors import HubToolError


class DomainError(HubToolError):
    """A failure an agent can act on (same shape as the hub's own tool errors)."""


def not_found(kind: str, ident: str) -> DomainError:
    return DomainError("not_found", f"{kind} {preview(ident)} does not exist (check the id, or search first)")


def invalid(field: str, problem: str) -> DomainError:
    return DomainError("invalid_argument", f"{field}: {problem}", details={"field": field})
