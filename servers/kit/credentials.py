"""How every provider connector authenticates: one `connect` builds its `ProviderHTTP` from one of
three kinds of credentials —

- `Bearer(token)`: a static token (GitHub, Jira/Zendesk OAuth tokens, `<PREFIX>_TOKEN` for trying
  things out);
- `Basic(user, password)`: Jira `email:api_token`, Zendesk `email/token:api_token`, ServiceNow
  user and password, BambooHR `api_key:x`;
- a `TokenManager` (OAuth 2.0 client-credentials or refresh-token grant, servers/kit/oauth.py):
  the header is fetched per request and refreshed before expiry, and once on a 401.

`oauth_from_env` reads the usual OAuth configuration: `<PREFIX>_TOKEN` (a bearer token), or
`<PREFIX>_CLIENT_ID` + `<PREFIX>_CLIENT_SECRET` + `<PREFIX>_REFRESH_TOKEN` (refresh-token grant; rotated
refresh tokens kept by the encrypted `TokenVault`; `<PREFIX>_TOKEN_URL` overrides the endpoint).
Which variables a provider needs is declared once, in its domain's `PROVIDERS` table.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hub.redact import remember_secrets
from servers.kit.http import ErrorText, ProviderHTTP, RateLimit, common_error_text
from servers.kit.oauth import TokenManager, TokenVault


@dataclass(frozen=True, repr=False)
class Bearer:
    """A static bearer token."""

    token: str


@dataclass(frozen=True, repr=False)
class Basic:
    """HTTP Basic credentials."""

    user: str
    password: str


Credentials = Bearer | Basic | TokenManager


def connect(provider: str, base_url: str, credentials: Credentials, *, headers: dict[str, str] | None = None,
            error_text: ErrorText = common_error_text, rate_limit: RateLimit | None = None,
            transport: httpx.AsyncBaseTransport | None = None) -> ProviderHTTP:
    """The provider's HTTP client, authenticated the one way every connector is. Its credential values
    are masked from then on wherever the process writes text (`remember_credentials`)."""
    headers = dict(headers or {})
    remember_credentials(credentials)
    if isinstance(credentials, TokenManager):
        return ProviderHTTP(provider, base_url, headers=headers, auth_headers=credentials.headers,
                            on_unauthorized=credentials.force_refresh, error_text=error_text, rate_limit=rate_limit,
                            transport=transport)
    if isinstance(credentials, Bearer):
        headers["Authorization"] = f"Bearer {credentials.token}"
    else:
        headers["Authorization"] = "Basic " + basic_token(credentials)
    return ProviderHTTP(provider, base_url, headers=headers, error_text=error_text, rate_limit=rate_limit, transport=transport)


def remember_credentials(credentials: Credentials) -> None:
    """Mask these credential values by value in every text the process writes (tool errors, logs): a
    provider, or a gateway in front of it, may repeat a key in its error (`API key 4f9a… is not
    permitted`), and a bare hex key has no shape a pattern could catch (outside review domains18 #8:
    only credentials in a hub config were remembered, never those a connector reads from its env)."""
    if isinstance(credentials, TokenManager):
        values = [credentials.client_secret, credentials.initial_refresh_token]
    elif isinstance(credentials, Bearer):
        values = [credentials.token]
    else:  # BambooHR's key is the user; an email is PII anyway. The pair as sent, too: a provider or proxy
        # may repeat the header it got, and the pair decodes to the password (outside review domains26).
        encoded = basic_token(credentials)
        values = [credentials.user, credentials.password, encoded, encoded.rstrip("=")]
    remember_secrets(("password", value) for value in values if value)


def basic_token(credentials: Basic) -> str:
    """The token of the `Authorization: Basic` header: base64 of `user:password`."""
    return base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()


def refresh_token_manager(provider: str, prefix: str, token_url: str, *, data_dir: Path | None, vault_name: str | None = None,
                          scope: str | None = None, token_transport: Any = None, sign_in: str = "sign in again") -> TokenManager:
    """A refresh-token grant from `<PREFIX>_CLIENT_ID`, `_CLIENT_SECRET`, `_REFRESH_TOKEN` (checked by
    the domain's `PROVIDERS` table), tokens kept in the encrypted vault under `data_dir`."""
    from hub.datadir import default_data_dir

    return TokenManager(provider, os.environ.get(f"{prefix}_TOKEN_URL", token_url), os.environ[f"{prefix}_CLIENT_ID"],
                        os.environ[f"{prefix}_CLIENT_SECRET"], "refresh_token", refresh_token=os.environ[f"{prefix}_REFRESH_TOKEN"],
                        scope=scope, vault=TokenVault(data_dir or default_data_dir(), vault_name or prefix.lower()),
                        transport=token_transport, reauthorize_hint=f"{sign_in} and set {prefix}_REFRESH_TOKEN")


def oauth_from_env(provider: str, prefix: str, token_url: str, *, data_dir: Path | None, token_variable: str | None = None,
                   also_required: Sequence[str] = (), scope: str | None = None, token_transport: Any = None,
                   sign_in: str = "sign in again") -> Bearer | TokenManager:
    """`<PREFIX>_TOKEN` as a bearer token, else the refresh-token grant; `ValueError` naming exactly
    the variables still missing (never a value)."""
    token_variable = token_variable or f"{prefix}_TOKEN"
    if token := os.environ.get(token_variable):
        return Bearer(token)
    names = [*also_required, f"{prefix}_CLIENT_ID", f"{prefix}_CLIENT_SECRET", f"{prefix}_REFRESH_TOKEN"]
    if missing := [n for n in names if not os.environ.get(n)]:
        raise ValueError(f"set {token_variable}, or {', '.join(missing)} for the {provider} backend")
    return refresh_token_manager(provider, prefix, token_url, data_dir=data_dir, scope=scope,
                                 token_transport=token_transport, sign_in=sign_in)
