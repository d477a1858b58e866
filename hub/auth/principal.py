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
    credential: str = ""
    """Which credential: the API key's id for `api_key`, the token's issuer for `jwt` (with `name`
    as its `sub`); empty for `local`. Recorded in audit rows."""


def identity(principal: Principal) -> tuple[str, str]:
    """Who a principal is, for telling callers apart (its kind and name; the credential is only which key)."""
    return principal.kind, principal.name


def current_principal(default: Principal) -> Principal:
    """The authenticated caller of the current HTTP request, else `default` (stdio, auth off)."""
    token = get_access_token()
    if token is None:
        return default
    claims = token.claims or {}
    kind = claims.get("mcp_hub_kind", "jwt")
    credential = claims.get("key_id") if kind == "api_key" else claims.get("iss")
    return Principal(token.client_id, tuple(token.scopes), kind, str(credential or ""))
