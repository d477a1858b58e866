"""HTTP authentication for the hub, built from the SDK's resource-server pieces.

The SDK provides the bearer middleware (401 with `WWW-Authenticate: Bearer resource_metadata=…`,
403 `insufficient_scope` with the needed scope) and the RFC 9728 protected-resource metadata
route; the hub supplies the token verifier (API keys, then JWTs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings as SdkAuthSettings
from pydantic import AnyHttpUrl
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route

from hub.auth.jwt import JwtVerifier
from hub.auth.keys import KeyStore
from hub.auth.verifier import HubTokenVerifier
from hub.hub import Hub

logger = logging.getLogger("hub.auth")


@dataclass
class HttpAuth:
    settings: SdkAuthSettings
    verifier: HubTokenVerifier
    metadata_url: AnyHttpUrl

    def middleware(self) -> list[Middleware]:
        return [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(self.verifier)),
            Middleware(AuthContextMiddleware),
        ]

    def metadata_routes(self) -> list[Route]:
        assert self.settings.resource_server_url is not None
        return create_protected_resource_routes(
            resource_url=self.settings.resource_server_url,
            authorization_servers=[self.settings.issuer_url],
            scopes_supported=self.settings.required_scopes,
        )


def resource_url(hub: Hub, host: str, port: int) -> str:
    configured = hub.config.hub.auth.resource_url
    if configured:
        return configured
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}/mcp"


def http_auth(hub: Hub, host: str, port: int) -> HttpAuth | None:
    """The auth pieces for the HTTP app, or None when `hub.auth.enabled` is off."""
    auth = hub.config.hub.auth
    if not auth.enabled:
        if host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning("serving on %s without authentication: anyone who can reach it can call every tool", host)
        return None
    resource = resource_url(hub, host, port)
    keys = KeyStore(hub.data_dir) if auth.api_keys else None
    jwt = JwtVerifier(auth.jwt, resource) if auth.jwt else None
    servers = auth.authorization_servers or ([auth.jwt.issuer] if auth.jwt else [resource.rsplit("/", 1)[0]])
    settings = SdkAuthSettings(
        issuer_url=AnyHttpUrl(servers[0]),
        resource_server_url=AnyHttpUrl(resource),
        required_scopes=auth.required_scopes or None,
        validate_token_resource=False,  # the verifier checks `aud` itself
    )
    return HttpAuth(settings, HubTokenVerifier(keys, jwt, resource), build_resource_metadata_url(AnyHttpUrl(resource)))
