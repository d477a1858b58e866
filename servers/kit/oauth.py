"""OAuth 2.0 access tokens for provider connectors (authlib), refreshed before they expire.

- grants: `client_credentials`, and `refresh_token` (rotating refresh tokens: a new one replaces
  the old and is persisted at once);
- a token is refreshed `skew_s` before expiry, and once more when the provider answers 401;
- tokens are persisted encrypted (Fernet) under `<data dir>/tokens/<name>.bin` with the key from
  `$MCP_HUB_SECRET_KEY` (make one with `python -c "from cryptography.fernet import Fernet;
  print(Fernet.generate_key().decode())"`); without a key they live in memory only — never in
  clear text on disk;
- when a refresh fails the error is `unauthorized` and says how to re-authorise.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from cryptography.fernet import Fernet, InvalidToken

from servers.kit.errors import DomainError

logger = logging.getLogger("servers.oauth")
KEY_VARIABLE = "MCP_HUB_SECRET_KEY"


class TokenVault:
    """Encrypted token storage; a no-op (memory only) when no key is configured."""

    def __init__(self, data_dir: Path, name: str) -> None:
        key = os.environ.get(KEY_VARIABLE)
        self._fernet = Fernet(key.encode()) if key else None
        self.path = data_dir / "tokens" / f"{name}.bin"
        if self._fernet is None:
            logger.warning("%s is not set: %s tokens are kept in memory only", KEY_VARIABLE, name)

    def load(self) -> dict[str, Any] | None:
        if self._fernet is None or not self.path.exists():
            return None
        try:
            return json.loads(self._fernet.decrypt(self.path.read_bytes()))
        except (InvalidToken, ValueError):
            logger.error("stored tokens in %s cannot be decrypted with the current %s; ignoring them", self.path, KEY_VARIABLE)
            return None

    def save(self, token: dict[str, Any]) -> None:
        if self._fernet is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self._fernet.encrypt(json.dumps(token).encode()))
        os.replace(tmp, self.path)


class TokenManager:
    """Keeps a valid bearer token for one provider connection."""

    def __init__(
        self,
        provider: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        grant: Literal["client_credentials", "refresh_token"],
        *,
        refresh_token: str | None = None,
        scope: str | None = None,
        vault: TokenVault | None = None,
        skew_s: float = 60.0,
        transport: Any = None,
        reauthorize_hint: str = "re-authorise the connection and update its refresh token",
    ) -> None:
        self.provider = provider
        self.token_url = token_url
        self.grant = grant
        self.scope = scope
        self.vault = vault
        self.skew_s = skew_s
        self.hint = reauthorize_hint
        self._client_args = {"client_id": client_id, "client_secret": client_secret, "transport": transport}
        self._token: dict[str, Any] | None = vault.load() if vault else None
        self._initial_refresh = refresh_token
        self.client_secret, self.initial_refresh_token = client_secret, refresh_token  # to mask (`remember_credentials`)
        self._lock = anyio.Lock()
        self.refreshes = 0

    async def headers(self) -> dict[str, str]:
        """The Authorization header, refreshing first if the token is missing or about to expire."""
        async with self._lock:
            if self._token is None or self._expires_soon():
                await self._obtain()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token['access_token']}"}

    async def force_refresh(self) -> dict[str, str]:
        """After a 401: get a new token even if ours looks valid."""
        async with self._lock:
            await self._obtain()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token['access_token']}"}

    def _expires_soon(self) -> bool:
        assert self._token is not None
        expires_at = self._token.get("expires_at")
        return expires_at is not None and float(expires_at) - self.skew_s <= time.time()

    async def _obtain(self) -> None:
        async with AsyncOAuth2Client(scope=self.scope, **self._client_args) as client:
            try:
                if self.grant == "client_credentials":
                    token = await client.fetch_token(self.token_url, grant_type="client_credentials")
                else:
                    refresh = (self._token or {}).get("refresh_token") or self._initial_refresh
                    if not refresh:
                        raise DomainError("unauthorized", f"no {self.provider} refresh token is configured; {self.hint}")
                    token = await client.refresh_token(self.token_url, refresh_token=refresh)
            except OAuthError as exc:
                raise DomainError(
                    "unauthorized", f"{self.provider} refused to refresh the access token ({exc.error}); {self.hint}"
                ) from None
            except (httpx.HTTPError, OSError) as exc:
                raise DomainError("unavailable", f"cannot reach the {self.provider} token endpoint ({type(exc).__name__})") from None
        token = dict(token)
        if "expires_at" not in token and "expires_in" in token:
            token["expires_at"] = time.time() + float(token["expires_in"])
        if self.grant == "refresh_token" and not token.get("refresh_token"):
            token["refresh_token"] = (self._token or {}).get("refresh_token") or self._initial_refresh
        self._token = token
        self.refreshes += 1
        if self.vault is not None:
            self.vault.save(token)
        logger.info("%s access token refreshed (expires in %ss)", self.provider, token.get("expires_in", "?"))
