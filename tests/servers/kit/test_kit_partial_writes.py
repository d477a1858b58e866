"""A provider write followed by a failing request in the same tool call (`servers.kit.landed`; outside
review writes16 #1, #3): the call answers a non-retryable `upstream_error` naming the change that
landed, a keyed call records that answer for its key, and the hub's retry policy does not run it
again. Before, the read-back's 503 failed the call as retryable `unavailable` with the key released:
the hub retried a keyed Jira create (two issues), an agent retried a QuickBooks payment (paid twice).

Each case fails the first request after the connector's first successful write, whatever it is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from hub.config import parse_config
from hub.hub import Hub
from tests.fakes.jira import FakeJira
from tests.accounting_support import quickbooks_on_fake
from tests.fakes.servicenow import USERS as SERVICENOW_USERS
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.anyio
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_MOUNTED: list[Any] = []


def mounted() -> Any:
    """The server the hub test mounts in-process (`module = "tests.servers.kit.test_kit_partial_writes:mounted"`)."""
    return _MOUNTED[-1]


class AfterWrite:
    """An ASGI wrapper: once armed, the first request after a successful write answers 503."""

    def __init__(self, app: Any, *, reads_only: bool = True) -> None:
        self.app, self.armed, self.written, self.failed = app, False, False, 0
        self.reads_only = reads_only

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.armed:
            if self.written and (scope["method"] not in WRITES or not self.reads_only):
                self.armed, self.failed = False, self.failed + 1
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b"{}"})
                return
            if scope["method"] in WRITES and scope["path"].rpartition("/")[2] not in {"search", "reports"}:
                self.written = True
        await self.app(scope, receive, send)

    def arm(self) -> None:
        self.armed, self.written = True, False


def jira(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, AfterWrite, Callable[[], int]]:
    from servers.ticketing.providers.jira import JiraTicketing
    from servers.ticketing.server import create_server

    fake = FakeJira()
    monkeypatch.setenv("JIRA_BASE_URL", "https://acme.atlassian.net")
    monkeypatch.setenv("JIRA_EMAIL", fake.email)
    monkeypatch.setenv("JIRA_API_TOKEN", fake.token)
    shim = AfterWrite(fake.app())
    server = create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=shim)))
    return server, shim, lambda: sum(1 for r in fake.requests if r["method"] == "POST" and r["path"].endswith("/issue"))


def zendesk(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, AfterWrite, Callable[[], int]]:
    from servers.ticketing.providers.zendesk import ZendeskTicketing
    from servers.ticketing.server import create_server

    fake = FakeZendesk()
    monkeypatch.setenv("ZENDESK_BASE_URL", "https://acme.zendesk.test")
    monkeypatch.setenv("ZENDESK_EMAIL", fake.email)
    monkeypatch.setenv("ZENDESK_API_TOKEN", fake.token)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    shim = AfterWrite(fake.app())
    server = create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=shim)))
    return server, shim, lambda: sum(1 for r in fake.requests if r["method"] == "POST" and r["path"].endswith("/tickets.json"))


def servicenow(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, AfterWrite, Callable[[], int]]:
    from servers.ticketing.providers.servicenow import ServiceNowTicketing
    from servers.ticketing.server import create_server

    fake = FakeServiceNow()
    monkeypatch.setenv("SERVICENOW_INSTANCE", "https://acme.service-now.test")
    monkeypatch.delenv("SERVICENOW_CLIENT_ID", raising=False)
    monkeypatch.setenv("SERVICENOW_USER", fake.user)
    monkeypatch.setenv("SERVICENOW_PASSWORD", fake.password)
    shim = AfterWrite(fake.app())
    server = create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=shim)))
    return server, shim, lambda: sum(1 for r in fake.requests if r["method"] == "POST" and r["path"].endswith("/incident"))


TICKETING = {"jira": (jira, {"project": "OPS"}), "zendesk": (zendesk, {"project": "support"}),
             "servicenow": (servicenow, {"project": "Service Desk", "assignee": SERVICENOW_USERS[0]["sys_id"]})}


@pytest.mark.parametrize("provider", sorted(TICKETING))
async def test_a_create_whose_read_back_fails_is_not_retryable_and_its_key_replays_that(
        provider: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    make, extra = TICKETING[provider]
    server, shim, created = make(monkeypatch)
    args = {**extra, "title": "Printer on fire", "idempotency_key": "k-1"}
    async with Client(server) as client:
        shim.arm()
        first = await client.call_tool("create_ticket", args)
        assert shim.failed == 1 and created() == 1, (shim.failed, created())
        body = first.structured_content
        assert first.is_error and body["code"] == "upstream_error" and body["retryable"] is False, body
        assert body["details"]["partially_applied"] is True and body["details"]["failed"] == "unavailable", body
        assert "Do not repeat this call" in body["message"] and body["details"]["landed"][0]["method"] == "POST", body
        again = await client.call_tool("create_ticket", args)
        assert again.is_error and again.structured_content == body, again.structured_content
        assert created() == 1, "a retry with the key must not create a second ticket"
        plain = await client.call_tool("create_ticket", {**extra, "title": "Second, no failure"})
        assert not plain.is_error and created() == 2, plain.structured_content


async def test_the_hub_does_not_retry_a_keyed_create_that_landed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The retry policy retries a keyed write on `unavailable`: it made a second Jira issue."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path / "server"))
    server, shim, created = jira(monkeypatch)
    _MOUNTED.append(server)
    config = parse_config({"hub": {"data_dir": str(tmp_path / "hub")}, "mcpServers": {
        "ticketing": {"module": "tests.servers.kit.test_kit_partial_writes:mounted"}}})
    async with Hub(config) as hub:
        shim.arm()
        result = await hub.route_call("ticketing__create_ticket", {"project": "OPS", "title": "Printer on fire",
                                                                   "idempotency_key": "k-9"})
        assert result.is_error and result.structured_content["code"] == "upstream_error", result.structured_content
        assert created() == 1 and shim.failed == 1


async def test_a_payment_whose_invoice_read_back_fails_is_not_retryable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from servers.accounting.server import create_server

    shims: list[AfterWrite] = []
    _fake, backend = quickbooks_on_fake(monkeypatch, tmp_path, wrap=lambda app: shims.append(AfterWrite(app)) or shims[-1])
    shim = shims[0]
    async with Client(create_server(backend)) as client:
        call: Callable[..., Awaitable[Any]] = client.call_tool
        invoice = (await call("create_invoice", {"contact_id": "customer:58", "issue_date": "2026-03-01", "lines": [
            {"description": "x", "quantity": "1", "unit_price": "100.00", "item": "1"}]})).structured_content
        invoice = invoice.get("invoice") or invoice
        shim.arm()
        paid = await call("record_payment", {"invoice_id": invoice["id"], "amount": "40.00", "date": "2026-03-02"})
        assert shim.failed == 1 and paid.is_error, paid.structured_content
        body = paid.structured_content
        assert (body["code"], body["retryable"], body["details"]["landed"][0]["path"]) == ("upstream_error", False, "/payment"), body
        after = (await call("get_invoice", {"invoice_id": invoice["id"]})).structured_content
        assert after["balance"] == "60.00", "the payment landed, and the error says so"


async def test_a_read_that_posts_is_not_a_landed_write(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A POST that only reads (`writes=False`: a report, a search) is not reported as a change made."""
    from servers.kit.errors import DomainError
    from servers.kit.http import ProviderHTTP
    from servers.kit.landed import after_landing, watching

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.method == "GET" else 200, json={"id": 7})

    http = ProviderHTTP("P", "http://p.test", transport=httpx.MockTransport(answer))
    with watching() as landed:
        await http.json("POST", "/reports/custom", writes=False)
        assert landed == []
        await http.json("POST", "/things")
        with pytest.raises(DomainError) as caught:
            await http.json("GET", "/things/7")
    error = after_landing("make_thing", landed, caught.value)
    assert error.body.retryable is False and error.body.details is not None
    assert error.body.details["landed"] == [{"method": "POST", "path": "/things", "id": "7"}]
    await http.aclose()
