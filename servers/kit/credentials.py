"""A provider's HTTP client authenticated from the environment, the way every OAuth connector is
configured: `<PREFIX>_TOKEN` (a bearer token, for trying things out), or `<PREFIX>_CLIENT_ID` +
`<PREFIX>_CLIENT_SECRET` + `<PREFIX>_REFRESH_TOKEN` (refresh-token grant; rotated refresh tokens
kept by the encrypted `TokenVault`; `<PREFIX>_TOKEN_URL` overrides the token endpoint)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from servers.kit.http import ProviderHTTP
from servers.kit.oauth import TokenManager, TokenVault


def oauth_http_from_env(
    provider: str,
    prefix: str,
    base_url: str,
    token_url: str,
    *,
    headers: dict[str, str],
    data_dir: Path | None,
    transport: httpx.AsyncBaseTransport | None = None,
    token_transport: Any = None,
    token_variable: str | None = None,
    also_required: Sequence[str] = (),
    scope: str | None = None,
    sign_in: str = "sign in again",
) -> ProviderHTTP:
    """`ProviderHTTP` for `provider`, or `ValueError` naming exactly the variables still missing."""
    token_variable = token_variable or f"{prefix}_TOKEN"
    if token := os.environ.get(token_variable):
        return ProviderHTTP(provider, base_url, headers={**headers, "Authorization": f"Bearer {token}"}, transport=transport)
    names = [*also_required, f"{prefix}_CLIENT_ID", f"{prefix}_CLIENT_SECRET", f"{prefix}_REFRESH_TOKEN"]
    if missing := [n for n in names if not os.environ.get(n)]:
        raise ValueError(f"set {token_variable}, or {', '.join(missing)} for the {provider} backend")
    from hub.datadir import default_data_dir

    tokens = TokenManager(provider, os.environ.get(f"{prefix}_TOKEN_URL", token_url), os.environ[f"{prefix}_CLIENT_ID"],
                          os.environ[f"{prefix}_CLIENT_SECRET"], "refresh_token", refresh_token=os.environ[f"{prefix}_REFRESH_TOKEN"],
                          scope=scope, vault=TokenVault(data_dir or default_data_dir(), prefix.lower()), transport=token_transport,
                          reauthorize_hint=f"{sign_in} and set {prefix}_REFRESH_TOKEN")
    return ProviderHTTP(provider, base_url, headers=headers, auth_headers=tokens.headers, on_unauthorized=tokens.force_refresh,
                        transport=transport)
