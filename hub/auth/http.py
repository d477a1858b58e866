"""HTTP authentication for the hub, built from the SDK's resource-server pieces.

The SDK provides the bearer authentication backend and the RFC 9728 protected-resource metadata
route; the hub supplies the token verifier (API keys, then JWTs) and `RequireBearer`, which
answers as RFC 6750 §3 and the MCP authorization spec say: 401 without an error code when no
bearer token was sent, 401 `invalid_token` for a token that does not verify, 403
`insufficient_scope` with `scope=` naming the scopes a token needs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings as SdkAuthSettings
from pydantic import AnyHttpUrl
from starlette.middleware import Middleware
from starlette.authentication import AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.auth.jwt import JwtVerifier
from hub.auth.keys import KeyStore
from hub.auth.scopes import grants
from hub.auth.verifier import HubTokenVerifier, KeyStoreDown
from hub.hub import Hub

logger = logging.getLogger("hub.auth")


@dataclass
class HttpAuth:
    settings: SdkAuthSettings
    verifier: HubTokenVerifier
    metadata_url: AnyHttpUrl

    def middleware(self) -> list[Middleware]:
        return [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(self.verifier), on_error=store_down_response),
            Middleware(AuthContextMiddleware),
        ]

    def require(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the bearer check (after `middleware()` has authenticated the request)."""
        return RequireBearer(app, self.settings.required_scopes or [], str(self.metadata_url))

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
    store = hub.config.hub.store
    keys = (KeyStore(hub.data_dir, hub.shared_store, store.key_cache_s) if auth.api_keys else None)
    jwt = JwtVerifier(auth.jwt, resource) if auth.jwt else None
    servers = auth.authorization_servers or ([auth.jwt.issuer] if auth.jwt else [resource.rsplit("/", 1)[0]])
    settings = SdkAuthSettings(
        issuer_url=AnyHttpUrl(servers[0]),
        resource_server_url=AnyHttpUrl(resource),
        required_scopes=auth.required_scopes or None,
        validate_token_resource=False,  # the verifier checks `aud` itself
    )
    return HttpAuth(settings, HubTokenVerifier(keys, jwt, resource), build_resource_metadata_url(AnyHttpUrl(resource)))


def store_down_response(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """503 + Retry-After when a key could not be checked (the key store is down); anything else the
    authentication backend refuses is a malformed request (Starlette's default, 400)."""
    if isinstance(exc, KeyStoreDown):
        logger.error("API key not checked: %s", exc)
        body = {"error": "temporarily_unavailable",
                "error_description": "the hub's key store is unreachable, so the API key could not be checked; "
                                     "retry in a few seconds (the operator sees the outage in /healthz)"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
    return JSONResponse({"error": "invalid_request", "error_description": str(exc)[:200]}, status_code=400)


class RequireBearer:
    """Lets a request through only with a verified bearer token holding every required scope.

    The challenge names an error only when a bearer token was sent (RFC 6750 §3.1: a request
    with no credentials, or with another scheme such as Basic, gets none). `scope=` lists every
    scope the resource needs, not only the missing ones, so a client asking for a new token
    with exactly those gets one that works; the description names the missing ones. Scopes are
    matched as everywhere in the hub (`*` and `<ns>:*` grant, `admin` ⊇ `write` ⊇ `read`).
    """

    def __init__(self, app: ASGIApp, required_scopes: list[str], metadata_url: str | None) -> None:
        self.app = app
        self.required_scopes = list(required_scopes)
        self.metadata_url = metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            if _sent_bearer(scope):
                await self._challenge(send, 401, "invalid_token",
                                      "the bearer token is invalid, expired, revoked or not issued for this hub")
            else:
                await self._challenge(send, 401, None, "authentication required: send Authorization: Bearer <token>")
            return
        missing = [needed for needed in self.required_scopes if not grants(user.scopes, needed)]
        if missing:
            await self._challenge(send, 403, "insufficient_scope", f"the token lacks scope(s): {' '.join(missing)}")
            return
        await self.app(scope, receive, send)

    async def _challenge(self, send: Send, status: int, error: str | None, description: str) -> None:
        params: list[str] = []
        if error is not None:
            params += [f'error="{error}"', f'error_description="{description}"']
        if self.required_scopes and (error is None or error == "insufficient_scope"):
            params.append(f'scope="{" ".join(self.required_scopes)}"')
        if self.metadata_url:
            params.append(f'resource_metadata="{self.metadata_url}"')
        body = json.dumps({"error": error, "error_description": description} if error else
                          {"error_description": description}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", " ".join(["Bearer", ", ".join(params)]).strip().encode()),
        ]})
        await send({"type": "http.response.body", "body": body})


def _sent_bearer(scope: Scope) -> bool:
    """Whether the request carries `Authorization: Bearer …` (what the SDK's backend verifies)."""
    header = Headers(scope=scope).get("authorization")
    return header is not None and header.lower().startswith("bearer ")
