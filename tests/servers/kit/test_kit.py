"""The server kit on its own: the OAuth token manager, the provider HTTP client, cursors."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP, retry_after_seconds
from servers.kit.oauth import TokenManager, TokenVault

pytestmark = pytest.mark.anyio


class TokenServer:
    def __init__(self, expires_in: int = 3600) -> None:
        self.calls: list[dict[str, Any]] = []
        self.expires_in = expires_in
        self.refresh = "r0"

    def app(self) -> Starlette:
        async def token(request: Request) -> JSONResponse:
            form = dict(await request.form())
            self.calls.append(form)
            if form["grant_type"] == "client_credentials":
                return JSONResponse({"access_token": f"cc{len(self.calls)}", "token_type": "Bearer", "expires_in": self.expires_in})
            if form.get("refresh_token") != self.refresh:
                return JSONResponse({"error": "invalid_grant"}, 400)
            self.refresh = f"r{len(self.calls)}"
            return JSONResponse({"access_token": f"rt{len(self.calls)}", "token_type": "Bearer",
                                 "expires_in": self.expires_in, "refresh_token": self.refresh})

        return Starlette(routes=[Route("/token", token, methods=["POST"])])


async def test_client_credentials_refreshes_before_expiry() -> None:
    server = TokenServer(expires_in=30)  # inside the 60 s skew: every use refreshes
    manager = TokenManager("P", "http://as.test/token", "id", "secret", "client_credentials",
                           transport=httpx2.ASGITransport(app=server.app()))
    assert await manager.headers() == {"Authorization": "Bearer cc1"}
    assert await manager.headers() == {"Authorization": "Bearer cc2"}
    server.expires_in = 3600
    assert await manager.headers() == {"Authorization": "Bearer cc3"}
    assert await manager.headers() == {"Authorization": "Bearer cc3"}, "a fresh token is reused"
    assert all(call["grant_type"] == "client_credentials" for call in server.calls)


async def test_rotating_refresh_tokens_persist_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_SECRET_KEY", Fernet.generate_key().decode())
    server = TokenServer()
    transport = httpx2.ASGITransport(app=server.app())
    first = TokenManager("P", "http://as.test/token", "id", "secret", "refresh_token", refresh_token="r0",
                         vault=TokenVault(tmp_path, "p"), transport=transport)
    assert await first.headers() == {"Authorization": "Bearer rt1"}
    stored = (tmp_path / "tokens" / "p.bin").read_bytes()
    assert stored.startswith(b"gAAAA"), "a Fernet token"
    assert Fernet(os.environ["MCP_HUB_SECRET_KEY"].encode()).decrypt(stored).startswith(b"{"), "JSON only under the key"
    assert b"access_token" not in stored and b"refresh_token" not in stored
    # A new process starts from the stored (rotated) refresh token, not the stale configured one.
    second = TokenManager("P", "http://as.test/token", "id", "secret", "refresh_token", refresh_token="r0",
                          vault=TokenVault(tmp_path, "p"), transport=transport)
    assert await second.force_refresh() == {"Authorization": "Bearer rt2"}
    assert server.calls[-1]["refresh_token"] == "r1"
    monkeypatch.setenv("MCP_HUB_SECRET_KEY", Fernet.generate_key().decode())
    assert TokenVault(tmp_path, "p").load() is None, "a different key cannot read the tokens"
    stale = TokenManager("P", "http://as.test/token", "id", "secret", "refresh_token", refresh_token="r0",
                         vault=TokenVault(tmp_path, "p"), transport=transport)
    with pytest.raises(DomainError) as caught:
        await stale.headers()
    assert caught.value.body.code == "unauthorized" and "re-authorise" in caught.value.body.message


async def test_without_a_key_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_HUB_SECRET_KEY", raising=False)
    server = TokenServer()
    manager = TokenManager("P", "http://as.test/token", "id", "secret", "refresh_token", refresh_token="r0",
                           vault=TokenVault(tmp_path, "p"), transport=httpx2.ASGITransport(app=server.app()))
    await manager.headers()
    assert not (tmp_path / "tokens").exists()


def test_retry_after_forms() -> None:
    now = 1_000_000.0
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"}), now) == 7
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": date}), now) == pytest.approx(30, abs=1)
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now + 12))}
    assert retry_after_seconds(httpx.Response(403, headers=reset), now) == 12
    assert retry_after_seconds(httpx.Response(429), now) is None


async def test_a_503_is_sent_once_and_the_hub_decides_retries() -> None:
    """The kit never retries (tests/servers/kit/test_kit_retries.py): POST, idempotent POST and GET alike. A
    POST not marked idempotent may have been made, so its 5xx is an outcome unknown, not retryable (recheck26 N3)."""
    hits: list[str] = []

    async def flaky(request: Request) -> JSONResponse:
        hits.append(request.method)
        return JSONResponse({"message": "busy"}, 503 if len(hits) % 2 else 200)

    app = Starlette(routes=[Route("/x", flaky, methods=["POST", "GET"])])
    http = ProviderHTTP("P", "http://p.test", transport=httpx.ASGITransport(app=app))
    for method, idempotent in (("POST", None), ("POST", True), ("GET", None)):
        hits.clear()
        with pytest.raises(DomainError) as caught:
            await http.request(method, "/x", idempotent=idempotent)
        if idempotent or method == "GET":
            assert caught.value.body.code == "unavailable" and caught.value.body.retryable and hits == [method]
        else:
            body = caught.value.body
            assert body.code == "upstream_error" and not body.retryable and body.details == {"status": 503, "outcome": "unknown"}
            assert "may have been made" in body.message and hits == [method]
        assert (await http.request(method, "/x")).status_code == 200 and hits == [method, method]


GOOGLE_LIMIT = {"error": {"code": 403, "message": "User Rate Limit Exceeded",
                          "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User Rate Limit Exceeded"}]}}
GOOGLE_QUOTA = {"error": {"code": 403, "message": "Calendar usage limits exceeded.",
                          "errors": [{"domain": "usageLimits", "reason": "quotaExceeded", "message": "Calendar usage limits exceeded."}]}}
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}


@pytest.mark.parametrize(("provider", "status", "headers", "body", "code", "wait"), [
    ("any", 403, {"Retry-After": "9"}, {"message": "Slow down"}, "rate_limited", 9),  # a 403 whose header names a wait
    ("any", 403, {"X-RateLimit-Remaining": "0"}, {"message": "API rate limit exceeded"}, "rate_limited", 60),
    # an admin's words are not a provider's limit (outside review r34 #3): a ServiceNow business rule, a Jira field
    ("any", 403, {}, {"error": {"message": "Operation aborted by Business Rule 'Rate limit P1 per caller'"}}, "forbidden", None),
    ("any", 403, {}, {"errorMessages": [], "errors": {"customfield_1": "Rate limit tier is not on the screen"}}, "forbidden", None),
    ("github", 403, {"X-RateLimit-Remaining": "4321"}, SECONDARY, "rate_limited", 60),  # GitHub's secondary limit
    ("github", 429, {}, SECONDARY, "rate_limited", 60),  # the same answered 429: GitHub's minute, not 30 s (r34 #5)
    ("github", 403, {}, {"message": "You have triggered an abuse detection mechanism."}, "rate_limited", 60),
    ("github", 403, {"X-RateLimit-Remaining": "12"}, {"message": "Resource not accessible by integration"}, "forbidden", None),
    ("google", 403, {}, GOOGLE_LIMIT, "rate_limited", 30),  # by its reason, not its English
    ("google", 403, {}, GOOGLE_QUOTA, "forbidden", None),  # a daily quota: no retry within a call ends it
    ("google", 403, {}, {"error": {"code": 403, "message": "The caller does not have permission"}}, "forbidden", None),
])
async def test_a_403_that_is_a_rate_limit_is_rate_limited(provider: str, status: int, headers: dict[str, str],
                                                         body: dict[str, Any], code: str, wait: float | None) -> None:
    """Google Calendar answers its per-user rate limits 403, GitHub its secondary limits 403 or 429 (with `Retry-After`
    or a message only): each was `forbidden`, telling an agent to get permissions it has and stopping the hub's retry;
    they are waits. Each provider judges its own 403s (its documented shape); a 403 saying neither stays a refusal."""
    from servers.calendar.providers.google import rate_limit as google
    from servers.ticketing.providers.github_map import rate_limit as github

    async def refuse(request: Request) -> JSONResponse:
        return JSONResponse(body, status, headers=headers)

    app = Starlette(routes=[Route("/x", refuse, methods=["GET"])])
    judge = {"github": github, "google": google}.get(provider)
    http = ProviderHTTP("P", "http://p.test", rate_limit=judge, transport=httpx.ASGITransport(app=app))
    with pytest.raises(DomainError) as caught:
        await http.request("GET", "/x")
    assert caught.value.body.code == code and caught.value.body.retry_after_s == wait
    assert caught.value.body.retryable is (code == "rate_limited")


def test_cursors_round_trip_and_reject_garbage() -> None:
    assert decode_cursor(encode_cursor({"next_page_token": "abc", "offset": 3})) == {"next_page_token": "abc", "offset": 3}
    assert decode_cursor(None) == {}
    with pytest.raises(DomainError):
        decode_cursor("%%%")
