"""One `TokenVerifier` for the SDK's bearer-auth middleware: API keys first, then JWTs."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthenticationError

from hub.auth.jwt import JwtVerifier
from hub.auth.keys import PREFIX, KeyStore
from hub.store.base import StoreUnavailable


class KeyStoreDown(AuthenticationError):
    """An API key could not be checked because the shared key store did not answer: the request is
    answered 503 with Retry-After (`hub.auth.http.store_down_response`), never 401 — the key may
    well be valid, and the client should retry rather than ask its user for a new one."""


class HubTokenVerifier:
    """Turns a bearer token into an `AccessToken` (principal in `client_id`), or None."""

    def __init__(self, keys: KeyStore | None, jwt: JwtVerifier | None, resource: str) -> None:
        self.keys = keys
        self.jwt = jwt
        self.resource = resource
        self.on_verified: Callable[[AccessToken], None] | None = None
        """Told of every token verified (`hub.auth.credential_watch.CredentialWatch.seen`)."""

    async def verify_token(self, token: str) -> AccessToken | None:
        verified = await self._verify(token)
        if verified is not None and self.on_verified is not None:
            self.on_verified(verified)
        return verified

    async def _verify(self, token: str) -> AccessToken | None:
        if token.startswith(PREFIX):
            try:
                record = await self.keys.averify(token) if self.keys is not None else None
            except StoreUnavailable as exc:
                raise KeyStoreDown(str(exc)) from exc
            if record is None:
                return None
            return AccessToken(
                token="api-key",  # never keep the secret around
                client_id=record.principal,
                scopes=list(record.scopes),
                expires_at=int(record.expires_at) if record.expires_at else None,
                resource=self.resource,
                claims={"mcp_hub_kind": "api_key", "key_id": record.key_id},
            )
        if self.jwt is None:
            return None
        verified = await self.jwt.verify(token)
        if verified is None:
            return None
        return AccessToken(
            token="jwt",
            client_id=verified.subject,
            scopes=list(verified.scopes),
            expires_at=verified.expires_at,
            resource=self.resource,
            subject=verified.subject,
            claims={"mcp_hub_kind": "jwt", "iss": verified.claims.get("iss")},
        )
