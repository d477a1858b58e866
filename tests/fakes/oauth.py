"""An OAuth 2.0 token endpoint for provider fakes: refresh-token grant with rotation (each refresh
invalidates the refresh token it used), client authentication by HTTP Basic, revocable access tokens."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass
class RotatingTokens:
    client_id: str = "client-1"
    client_secret: str = "client-secret-1"
    refresh_token: str = "refresh-0"
    access_token: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def expire(self) -> None:
        self.access_token = "revoked-" + secrets.token_hex(4)

    def authorized(self, request: Request) -> bool:
        return self.access_token is not None and request.headers.get("authorization") == f"Bearer {self.access_token}"

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.requests.append(form)
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return JSONResponse({"error": "invalid_grant", "error_description": "Token invalid"}, 400)
        self.access_token = "access-" + secrets.token_hex(8)
        self.refresh_token = "refresh-" + secrets.token_hex(8)
        return JSONResponse({"access_token": self.access_token, "token_type": "bearer", "expires_in": 3600,
                             "refresh_token": self.refresh_token, "x_refresh_token_expires_in": 8726400})
