"""JWT bearer tokens from an external OAuth 2.1 authorization server.

Checked: signature (static JWKs and/or a JWKS URL, refetched once when a token names an unknown
`kid`), `iss`, `aud` (this hub's resource URL), `exp`/`nbf` with a small leeway. Scopes come from
`scope` (space-separated) or `scp` (list). Uses `joserfc`, the JOSE library authlib ships with and
points to now that `authlib.jose` is deprecated.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import errors, jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from hub.settings import JwtSettings

logger = logging.getLogger("hub.auth")
JWKS_MIN_REFRESH_S = 30.0


@dataclass(frozen=True)
class VerifiedJwt:
    subject: str
    scopes: tuple[str, ...]
    expires_at: int | None
    claims: dict[str, Any]


class JwtVerifier:
    def __init__(self, settings: JwtSettings, audience: str) -> None:
        self.settings = settings
        self.audience = settings.audience or audience
        self._static = [KeySet.import_key_set({"keys": settings.keys})] if settings.keys else []
        self._remote: KeySet | None = None
        self._fetched_at = 0.0
        self._registry = JWTClaimsRegistry(
            leeway=int(settings.leeway_s),
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
        )

    async def verify(self, token: str) -> VerifiedJwt | None:
        """The verified token, or None (the reason is logged, never the token)."""
        decoded = None
        for key_set in await self._key_sets(refresh=False):
            decoded = self._decode(token, key_set)
            if decoded is not None:
                break
        if decoded is None and self.settings.jwks_url:
            remote = await self._key_sets(refresh=True)
            decoded = self._decode(token, remote[-1]) if remote else None
        if decoded is None:
            return None
        try:
            self._registry.validate(decoded.claims)
        except errors.JoseError as exc:
            logger.info("rejected a JWT: %s", exc.description or exc.error)
            return None
        claims = dict(decoded.claims)
        scopes = _scopes(claims.get("scope", claims.get("scp", [])))
        if scopes is None:
            logger.info("rejected a JWT: its scope claim is neither a space-separated string nor a list of strings")
            return None
        # The caller's identity: its `sub`; a token for an application alone (no `sub`) is that client,
        # named apart so it can never be a user whose `sub` is the same string. A token naming neither
        # is refused: every such token used to be one shared principal, `unknown` (outside review).
        client = claims.get("client_id") or claims.get("azp")
        if claims.get("sub"):
            subject = str(claims["sub"])
            if subject.startswith("client:"):  # the prefix names applications: a user's sub may not spell one
                logger.info("rejected a JWT: its sub uses the reserved prefix 'client:'")
                return None
        elif client:
            subject = f"client:{client}"
        else:
            logger.info("rejected a JWT: it names no subject (sub) and no client (client_id, azp)")
            return None
        exp = claims.get("exp")
        return VerifiedJwt(subject, scopes, int(exp) if isinstance(exp, (int, float)) else None, claims)

    def _decode(self, token: str, key_set: KeySet) -> Any:
        try:
            return jwt.decode(token, key_set, algorithms=self.settings.algorithms)
        except errors.JoseError as exc:
            logger.debug("JWT did not verify with a key set: %s", exc.error)
            return None
        except ValueError:
            return None

    async def _key_sets(self, refresh: bool) -> list[KeySet]:
        sets = list(self._static)
        url = self.settings.jwks_url
        if url and (self._remote is None or (refresh and time.monotonic() - self._fetched_at > JWKS_MIN_REFRESH_S)):
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.get(url)
                    response.raise_for_status()
                    self._remote = KeySet.import_key_set(response.json())
                self._fetched_at = time.monotonic()
            except (httpx.HTTPError, ValueError, errors.JoseError) as exc:
                logger.warning("could not fetch the JWKS from %s: %s", url, type(exc).__name__)
        if self._remote is not None:
            sets.append(self._remote)
        return sets


def _scopes(raw: Any) -> tuple[str, ...] | None:
    """The scopes of a `scope` (RFC 6749 3.3: space-separated, split on the space character only, so
    "read\u00a0admin" is one unknown scope, not two) or `scp` (a list of strings) claim; None for
    anything else (outside review: an integer scope answered 500, and any Unicode space split a scope)."""
    if isinstance(raw, str):
        return tuple(part for part in raw.split(" ") if part)
    if isinstance(raw, list) and all(isinstance(part, str) for part in raw):
        return tuple(raw)
    return None
