"""Retries happen once, at the hub: the kit sends ONE provider request per tool call and hands a
429/5xx/network failure back at once as a retryable error with `retry_after_s` (servers/kit/http.py)."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from servers.hris.privacy import PrivacyPolicy
from servers.hris.providers.bamboohr import BambooHris
from servers.hris.server import create_server
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
from tests.fakes.bamboohr import FakeBamboo

pytestmark = pytest.mark.anyio
_MOUNTED: list[Any] = []


def mounted() -> Any:
    """The server the hub test mounts in-process (`module = "tests.servers.kit.test_kit_retries:mounted"`)."""
    return _MOUNTED[-1]


@pytest.fixture
def bamboo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeBamboo, Any]:
    fake = FakeBamboo()
    monkeypatch.setenv("BAMBOOHR_COMPANY", fake.company)
    monkeypatch.setenv("BAMBOOHR_API_KEY", fake.key)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = BambooHris.from_env(transport=httpx.ASGITransport(app=fake.app()))
    return fake, create_server(backend, PrivacyPolicy(frozenset()))


async def test_a_503_costs_one_request_and_says_when_to_retry(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, server = bamboo
    fake.fail_next.append((503, {"Retry-After": "7"}, "{}"))
    async with Client(server) as client:
        failed = await client.call_tool("list_departments", {})
        assert failed.is_error
        body = failed.structured_content
        assert (body["code"], body["retryable"], body["retry_after_s"]) == ("unavailable", True, 7)
        assert len(fake.requests) == 1, "the kit no longer retries a 503 itself"
        ok = await client.call_tool("list_departments", {})
        assert not ok.is_error and ok.structured_content["departments"]
        assert len(fake.requests) == 2, "the next call is one request too"


async def test_a_429_with_an_http_date_is_rate_limited_at_once(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, server = bamboo
    when = email.utils.formatdate(time.time() + 6, usegmt=True)
    fake.fail_next.append((429, {"Retry-After": when}, "{}"))
    async with Client(server) as client:
        body = (await client.call_tool("list_departments", {})).structured_content
    assert body["code"] == "rate_limited" and body["retryable"] is True and 3 <= body["retry_after_s"] <= 6
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("failure", "code"), [(httpx.ConnectError, "unavailable"), (httpx.ConnectTimeout, "unavailable"),
                                               (httpx.ReadTimeout, "timeout")])
async def test_a_network_error_is_one_attempt(failure: type[httpx.TransportError], code: str) -> None:
    """Not connected (refused, or no connection in time): `unavailable`, which the hub may retry.
    Sent but unanswered: `timeout`, which it does not (the provider may have acted on it)."""
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise failure("no answer", request=request)

    http = ProviderHTTP("P", "http://p.test", transport=httpx.MockTransport(refuse))
    with pytest.raises(DomainError) as caught:
        await http.request("GET", "/x")
    assert caught.value.body.code == code and caught.value.body.retryable and len(sent) == 1


async def test_one_token_refresh_on_401_is_not_a_retry() -> None:
    sent: list[str] = []
    refreshes: list[int] = []
    token = {"value": "old"}

    def api(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["authorization"])
        return httpx.Response(200 if request.headers["authorization"] == "Bearer new" else 401, json={})

    async def headers() -> dict[str, str]:
        return {"Authorization": f"Bearer {token['value']}"}

    async def refresh() -> dict[str, str]:
        refreshes.append(1)
        token["value"] = "new"
        return await headers()

    http = ProviderHTTP("P", "http://p.test", auth_headers=headers, on_unauthorized=refresh, transport=httpx.MockTransport(api))
    assert (await http.request("GET", "/x")).status_code == 200
    assert sent == ["Bearer old", "Bearer new"] and len(refreshes) == 1
    token["value"] = "revoked"
    sent.clear()

    async def refuse_refresh() -> dict[str, str]:
        refreshes.append(1)
        return await headers()

    http.on_unauthorized = refuse_refresh
    with pytest.raises(DomainError) as caught:
        await http.request("GET", "/x")
    assert caught.value.body.code == "unauthorized" and len(sent) == 2, "one refresh, one re-send, then the error"


async def test_through_the_hub_retries_happen_once(bamboo: tuple[FakeBamboo, Any]) -> None:
    """The hub's retry policy retries the read-only call honouring retry_after_s; the kit adds none:
    a provider that keeps answering 503 sees 3 requests (the hub's attempts), not 3 x 3."""
    fake, server = bamboo
    _MOUNTED.append(server)
    config = parse_config({"mcpServers": {"hris": {"module": f"{__name__}:mounted"}}})
    async with Hub(config) as hub:
        fake.fail_next.append((503, {"Retry-After": "0"}, "{}"))
        recovered = await hub.route_call("hris__list_departments", {})
        assert not recovered.is_error and len(fake.requests) == 2, "one failed request, one hub retry"
        fake.requests.clear()
        fake.fail_next.extend([(503, {"Retry-After": "0"}, "{}")] * 9)
        failed = await hub.route_call("hris__list_departments", {})
    assert failed.is_error and failed.structured_content is not None
    assert failed.structured_content["code"] == "unavailable"
    assert len(fake.requests) == config.servers[0].retry.max_attempts == 3
