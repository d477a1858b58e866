"""One `TokenVerifier` for the SDK's bearer-auth middleware: API keys first, then JWTs."""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken

from hub.auth.jwt import JwtVerifier
from hub.auth.keys import PREFIX, KeyStore


class HubTokenVerifier:
    """Turns a bearer token into an `AccessToken` (principal in `client_id`), or None."""

    def __init__(self, keys: KeyStore | None, jwt: JwtVerifier | None, resource: str) -> None:
        self.keys = keys
        self.jwt = jwt
        self.resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.startswith(PREFIX):
            record = self.keys.verify(token) if self.keys is not None else None
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
