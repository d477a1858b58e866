"""Shared by the webhook tests: per-provider secrets and payloads, headers signed with each provider's
documented algorithm (computed here, independently of the code under test), and an intake served by
uvicorn on an ephemeral loopback port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from servers.kit.store import Store
from tests.conftest import Proc, hub_command, write_config
from servers.kit.webhooks import ChangeFeed, EventLog, Intake, Policy, Processor
from servers.kit.webhooks.log import events_path

SECRETS = {p: f"s3cret-{p}-0123456789" for p in
           ("github", "jira", "zendesk", "servicenow", "bamboohr", "google", "graph", "quickbooks", "xero")}
ALL = tuple(SECRETS)
HMAC_SIGNED = ("github", "jira", "zendesk", "servicenow", "bamboohr", "quickbooks", "xero")
TIMESTAMPED = ("zendesk", "servicenow", "bamboohr")
SIGNATURE_HEADER = {"github": "X-Hub-Signature-256", "jira": "X-Hub-Signature", "zendesk": "X-Zendesk-Webhook-Signature",
                    "servicenow": "X-ServiceNow-Signature", "bamboohr": "X-BambooHR-Signature",
                    "google": "X-Goog-Channel-Token", "quickbooks": "intuit-signature", "xero": "x-xero-signature"}


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def payload(provider: str, record: str = "7", client_state: str | None = None) -> bytes:
    bodies: dict[str, Any] = {
        "github": {"action": "opened", "issue": {"number": int(record)}, "repository": {"full_name": "acme/app"}},
        "jira": {"webhookEvent": "jira:issue_updated", "issue": {"key": f"OPS-{record}"}},
        "zendesk": {"type": "zen:event-type:ticket.status_changed", "detail": {"id": record}},
        "servicenow": {"table": "incident", "sys_id": f"sys{record}", "operation": "update"},
        "bamboohr": {"employees": [{"id": record, "action": "Updated", "changedFields": ["jobTitle"]}]},
        "google": None,
        "graph": {"value": [{"subscriptionId": "sub-1", "clientState": client_state or SECRETS["graph"],
                             "changeType": "updated", "resource": f"me/events/{record}", "resourceData": {"id": f"ev{record}"}}]},
        "quickbooks": {"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [
            {"name": "Invoice", "id": record, "operation": "Update", "lastUpdated": "2026-12-01T10:00:00Z"}]}}]},
        "xero": {"events": [{"resourceId": f"inv-{record}", "eventCategory": "INVOICE", "eventType": "UPDATE",
                             "tenantId": "t1"}], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": record},
    }
    body = bodies[provider]
    return b"" if body is None else json.dumps(body).encode()


def signed(provider: str, body: bytes, secret: str | None = None, now: float | None = None) -> dict[str, str]:
    """Headers a provider would send, per its documented scheme."""
    key = secret or SECRETS[provider]
    now = time.time() if now is None else now
    delivery = str(uuid.uuid4())
    if provider == "github":
        return {"X-Hub-Signature-256": "sha256=" + _mac(key, body).hex(), "X-GitHub-Delivery": delivery, "X-GitHub-Event": "issues"}
    if provider == "jira":
        return {"X-Hub-Signature": "sha256=" + _mac(key, body).hex(), "X-Atlassian-Webhook-Identifier": delivery}
    if provider == "zendesk":
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"X-Zendesk-Webhook-Signature": base64.b64encode(_mac(key, stamp.encode() + body)).decode(),
                "X-Zendesk-Webhook-Signature-Timestamp": stamp, "X-Zendesk-Webhook-Invocation-Id": delivery}
    if provider == "servicenow":
        stamp = str(int(now))
        return {"X-ServiceNow-Signature": "sha256=" + _mac(key, stamp.encode() + b"." + body).hex(),
                "X-ServiceNow-Timestamp": stamp, "X-ServiceNow-Delivery": delivery}
    if provider == "bamboohr":
        stamp = str(int(now))
        return {"X-BambooHR-Signature": _mac(key, body + stamp.encode()).hex(), "X-BambooHR-Timestamp": stamp}
    if provider == "google":
        return {"X-Goog-Channel-Token": key, "X-Goog-Channel-ID": "chan-1", "X-Goog-Message-Number": delivery,
                "X-Goog-Resource-State": "exists", "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/ada/events"}
    if provider == "graph":
        return {}
    if provider in ("quickbooks", "xero"):
        name = "intuit-signature" if provider == "quickbooks" else "x-xero-signature"
        return {name: base64.b64encode(_mac(key, body)).decode()}
    raise AssertionError(provider)


class Served:
    """An intake for all providers on a real uvicorn socket, its log and its feed."""

    def __init__(self, intake: Intake, feed: ChangeFeed, url: str) -> None:
        self.intake, self.feed, self.url = intake, feed, url
        self.http = httpx.AsyncClient(base_url=url, timeout=30)

    async def post(self, provider: str, body: bytes, headers: dict[str, str], **params: str) -> httpx.Response:
        return await self.http.post(f"/webhooks/{provider}", content=body, headers=headers, params=params)



async def serve(app: Any) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.01)  # waiting for the state "listening"
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


def make_intake(data_dir: Path, handler: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
                policy: Policy | None = None, domain: str = "ticketing") -> tuple[Intake, ChangeFeed]:
    feed = ChangeFeed(Store(data_dir / "feed.sqlite", []))
    log = EventLog(events_path(data_dir, domain))
    return Intake(domain, ALL, log, Processor(log, feed, policy, handler)), feed




def set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for provider, secret in SECRETS.items():
        monkeypatch.setenv(f"{provider.upper()}_WEBHOOK_SECRET", secret)


@asynccontextmanager
async def http_hub(tmp_path: Path, servers: dict[str, Any], env: dict[str, str],
                   hub: dict[str, Any] | None = None) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """An HTTP hub process (data dir `tmp_path`) on an ephemeral port: its MCP URL, and an HTTP
    client on its base URL for posting deliveries; stopped at the end."""
    proc = Proc(hub_command(write_config(tmp_path, servers, hub=hub), "--transport", "http", "--port", "0"),
                env={"MCP_HUB_DATA_DIR": str(tmp_path), **env})
    try:
        url = proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
        async with httpx.AsyncClient(base_url=url.rsplit("/mcp", 1)[0], timeout=30) as http:
            yield url, http
    finally:
        proc.stop()


async def deliver(http: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST a delivery to the hub, again while it answers 503 (its in-process domain still connecting)."""
    with anyio.fail_after(30):
        while (answer := await http.post(path, content=body, headers=headers)).status_code == 503:
            await anyio.sleep(0.05)  # waiting for the in-process domain to connect
    return answer
