"""The caller of a request: a name (API key principal or JWT subject) and its scopes."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import get_access_token


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: tuple[str, ...]
    kind: str = "local"
    """`api_key`, `jwt`, or `local` (stdio / auth disabled)."""


def current_principal(default: Principal) -> Principal:
    """The authenticated caller of the current HTTP request, else `default` (stdio, auth off)."""
    token = get_access_token()
    if token is None:
        return default
    kind = (token.claims or {}).get("mcp_hub_kind", "jwt")
    return Principal(token.client_id, tuple(token.scopes), kind)
