"""Provider webhooks: each provider's signature scheme over real HTTP (vectors computed here from the
documented algorithms, not with the code under test), refusals (tampered, wrong secret, missing
header, stale, oversize), deduplication, dead-letter and replay, durability across a restart, and
the change feed (`list_changes`) through the hub."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from starlette.applications import Starlette

from hub.config import parse_config
from hub.hub import Hub
from servers.kit.store import Store
from servers.kit.webhooks import ChangeFeed, EventLog, Intake, Policy, Processor
from servers.kit.webhooks.log import events_path
from tests.conftest import PY, ROOT, Proc, free_port, hub_command, wait_for_port, write_config

pytestmark = pytest.mark.anyio
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


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for provider, secret in SECRETS.items():
        monkeypatch.setenv(f"{provider.upper()}_WEBHOOK_SECRET", secret)


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


@pytest.fixture
async def served(tmp_path: Path, secrets: None) -> AsyncIterator[Served]:
    intake, feed = make_intake(tmp_path)
    async for url in serve(Starlette(routes=intake.routes())):  # processor not running: tests drain it
        async with Served(intake, feed, url).http:
            yield Served(intake, feed, url)


# -- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
async def test_signed_delivery_is_accepted_logged_and_fed(served: Served, provider: str) -> None:
    body = payload(provider)
    response = await served.post(provider, body, signed(provider, body))
    assert response.status_code == 200
    assert response.content == b"" if provider == "xero" else response.json()["accepted"] is True
    assert await served.intake.processor.drain() == 1
    page = await served.feed.page(None, None, 10, None)
    assert len(page.changes) == 1 and page.changes[0].source == provider
    assert [r.state for r in await served.intake.log.list()] == ["processed"]


@pytest.mark.parametrize("provider", HMAC_SIGNED)
async def test_tampered_body_is_refused(served: Served, provider: str) -> None:
    body = payload(provider)
    headers = signed(provider, body)
    response = await served.post(provider, body.replace(b"7", b"8", 1), headers)
    assert response.status_code == 401
    assert await served.intake.log.list() == []


@pytest.mark.parametrize("provider", ALL)
async def test_wrong_secret_is_refused(served: Served, provider: str) -> None:
    body = payload(provider, client_state="not-the-client-state")
    response = await served.post(provider, body, signed(provider, body, secret="not-the-secret-at-all"))
    assert response.status_code == 401
    assert await served.intake.log.list() == []


@pytest.mark.parametrize("provider", ALL)
async def test_missing_signature_is_refused(served: Served, provider: str) -> None:
    body = payload(provider)
    headers = signed(provider, body)
    if provider == "graph":
        body = json.dumps({"value": [{"subscriptionId": "sub-1", "changeType": "updated", "resource": "me/events/1"}]}).encode()
    else:
        headers.pop(SIGNATURE_HEADER[provider])
    response = await served.post(provider, body, headers)
    assert response.status_code == 401
    assert await served.intake.log.list() == []


@pytest.mark.parametrize("provider", TIMESTAMPED)
async def test_stale_timestamp_is_refused(served: Served, provider: str) -> None:
    body = payload(provider)
    assert (await served.post(provider, body, signed(provider, body, now=time.time() - 301))).status_code == 401
    assert (await served.post(provider, body, signed(provider, body, now=time.time() + 400))).status_code == 401
    assert await served.intake.log.list() == []


@pytest.mark.parametrize("provider", ALL)
async def test_replayed_delivery_is_acknowledged_once_logged_once(served: Served, provider: str) -> None:
    body = payload(provider)
    headers = signed(provider, body)
    first = await served.post(provider, body, headers)
    again = await served.post(provider, body, headers)
    assert first.status_code == again.status_code == 200
    if provider != "xero":
        assert again.json()["duplicate"] is True and again.json()["event"] == first.json()["event"]
    rows = await served.intake.log.list()
    assert len(rows) == 1 and rows[0].duplicates == 1
    await served.intake.processor.drain()
    assert len((await served.feed.page(None, None, 10, None)).changes) == 1


async def test_oversize_body_gets_413(served: Served) -> None:
    body = json.dumps({"pad": "x" * (1 << 20)}).encode()
    response = await served.post("github", body, signed("github", body))
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while streaming
        for _ in range(20):
            yield b"x" * 65536

    streamed = await served.http.post("/webhooks/github", content=chunks(), headers=signed("github", b""))
    assert streamed.status_code == 413
    assert await served.intake.log.list() == []


async def test_unconfigured_secret_and_unknown_provider(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET")
    body = payload("github")
    assert (await served.post("github", body, signed("github", body))).status_code == 401
    assert (await served.post("stripe", body, {})).status_code == 404
    assert await served.intake.log.list() == []


async def test_graph_validation_handshake_echoes_the_token(served: Served) -> None:
    response = await served.post("graph", b"", {}, validationToken="Validation: Token 123")
    assert response.status_code == 200 and response.text == "Validation: Token 123"
    assert response.headers["content-type"].startswith("text/plain")
    assert await served.intake.log.list() == []


async def test_xero_intent_to_receive(served: Served) -> None:
    body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "ABC"}).encode()
    good = await served.post("xero", body, signed("xero", body))
    bad = await served.post("xero", body, signed("xero", body, secret="wrong"))
    assert (good.status_code, good.content) == (200, b"")
    assert (bad.status_code, bad.content) == (401, b"")
    assert await served.intake.log.list() == []


async def test_google_sync_message_is_acknowledged_without_a_change(served: Served) -> None:
    headers = signed("google", b"") | {"X-Goog-Resource-State": "sync"}
    assert (await served.post("google", b"", headers)).status_code == 200
    await served.intake.processor.drain()
    assert (await served.feed.page(None, None, 10, None)).changes == []


# -- processing: retries, dead letter, replay, restart -----------------------------------------


async def test_failures_dead_letter_and_replay_reprocesses_once(tmp_path: Path, secrets: None) -> None:
    calls: list[int] = []
    broken = True

    async def handler(event: dict[str, Any]) -> None:
        calls.append(event["seq"])
        if broken:
            raise RuntimeError("downstream refused")

    intake, _ = make_intake(tmp_path, handler, Policy(max_attempts=5, base_delay_s=0.001))
    async for url in serve(Starlette(routes=intake.routes())):
        body = payload("github")
        async with httpx.AsyncClient(base_url=url) as http:
            seq = (await http.post("/webhooks/github", content=body, headers=signed("github", body))).json()["event"]
    far = time.time() + 3600  # every retry is due: the backoff schedule is not what this test waits on
    await intake.processor.drain(now=far)
    assert calls == [seq] * 5
    [row] = await intake.log.list("dead")
    assert row.attempts == 5 and "downstream refused" in (row.last_error or "")
    assert "downstream refused" not in body.decode()

    cli = [PY, "-m", "hub.cli", "events"]
    listed = subprocess.run([*cli, "list", "--data-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                            timeout=60, check=True)
    assert "dead" in listed.stdout and "ticketing" in listed.stdout
    dead = subprocess.run([*cli, "dead-letter", "--domain", "ticketing", "--data-dir", str(tmp_path), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    assert [json.loads(line)["seq"] for line in dead.stdout.splitlines()] == [seq]
    subprocess.run([*cli, "replay", str(seq), "--domain", "ticketing", "--data-dir", str(tmp_path)],
                   capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)

    broken = False
    calls.clear()
    replayed = EventLog(events_path(tmp_path, "ticketing"))
    processor = Processor(replayed, None, Policy(base_delay_s=0.001), handler)
    await processor.drain(now=far)
    await processor.drain(now=far)
    assert calls == [seq], "replay reprocesses exactly once"
    assert [(r.state, r.attempts) for r in await replayed.list()] == [("processed", 1)]


async def test_backoff_grows_with_jitter_and_caps() -> None:
    policy = Policy(base_delay_s=1.0, max_delay_s=60.0)
    for attempts in range(1, 12):
        nominal = min(60.0, 2.0 ** (attempts - 1))
        assert 0.5 * nominal <= policy.backoff(attempts) < 1.5 * nominal
    assert len({policy.backoff(3) for _ in range(20)}) > 1, "jittered"


async def test_retention_purges_settled_payloads_per_domain(tmp_path: Path) -> None:
    policy = Policy.from_env("hris", {"HRIS_EVENTS_RETENTION_DAYS": "7", "HRIS_EVENTS_MAX_ATTEMPTS": "2"})
    assert (policy.retention_days, policy.max_attempts) == (7.0, 2)
    log = EventLog(events_path(tmp_path, "hris"))
    day = 86400.0
    old, _ = await log.record("bamboohr", "old", {}, b'{"employees": [{"id": "1"}]}', now=time.time() - 8 * day)
    fresh, _ = await log.record("bamboohr", "fresh", {}, b'{"employees": [{"id": "2"}]}', now=time.time() - 6 * day)
    pending, _ = await log.record("bamboohr", "pending", {}, b'{"employees": "not a list"}', now=time.time() - 9 * day)
    processor = Processor(log, None, policy)
    await log.settle(old, error=None, next_at=None, dead=False, now=time.time())
    await log.settle(fresh, error=None, next_at=None, dead=False, now=time.time())
    await processor.purge_if_due(time.time())
    purged = {r.delivery_id: r.purged for r in await log.list()}
    assert purged == {"old": True, "fresh": False, "pending": False}, "never purge what is still to be processed"
    with pytest.raises(ValueError, match="purged"):
        await log.replay(old)


async def test_restart_loses_no_accepted_event(tmp_path: Path, secrets: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    from servers.ticketing.server import create_server
    from servers.ticketing.store import EmbeddedTicketing

    first = create_server(EmbeddedTicketing(tmp_path))
    bodies = [payload("jira", str(n)) for n in range(5)]
    async for url in serve(Starlette(routes=first.webhooks.routes())):  # acknowledged, never processed here
        async with httpx.AsyncClient(base_url=url) as http:
            for body in bodies:
                assert (await http.post("/webhooks/jira", content=body, headers=signed("jira", body))).status_code == 200
    assert {r.state for r in await first.webhooks.log.list()} == {"received"}

    again = create_server(EmbeddedTicketing(tmp_path))  # a new process on the same data dir
    async with again.webhooks.running():
        with anyio.fail_after(30):
            while {r.state for r in await again.webhooks.log.list()} != {"processed"}:
                await anyio.sleep(0.02)  # waiting for the state "all processed"
    page = await again.change_feed.page(None, ["ticket"], 50, None)
    assert sorted(c.record_id for c in page.changes) == [f"OPS-{n}" for n in range(5)]


# -- the feed --------------------------------------------------------------------------------


async def test_embedded_writes_and_webhooks_reach_list_changes_through_the_hub(tmp_path: Path, secrets: None,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    from servers.ticketing.store import EmbeddedTicketing

    await EmbeddedTicketing(tmp_path).create_project("OPS")
    async with Hub(parse_config({"mcpServers": {"ticketing": {"builtin": "ticketing"}}})) as hub:
        created = await hub.route_call("ticketing__create_ticket", {"project": "OPS", "title": "Printer on fire"})
        key = created.structured_content["key"]
        moved = await hub.route_call("ticketing__transition_ticket", {"id": key, "to": "in_progress"})
        assert not moved.is_error, moved.content
        result = await hub.route_call("ticketing__list_changes", {"kinds": ["ticket"]})
        changes = result.structured_content["changes"]
        assert [(c["record_id"], c["action"], c["source"]) for c in changes] == [(key, "created", "embedded"),
                                                                                (key, "updated", "embedded")]
        refused = await hub.route_call("ticketing__list_changes", {"since": "2026-01-01T00:00:00"})
        assert refused.is_error and refused.structured_content["code"] == "invalid_argument"


async def test_calendar_and_accounting_writes_reach_list_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    from servers.calendar.store import EmbeddedCalendar

    await EmbeddedCalendar(tmp_path).add_calendar("ada@example.com", "Ada", "Europe/London", primary=True)
    config = {"calendar": {"builtin": "calendar"}, "accounting": {"builtin": "accounting"}}
    async with Hub(parse_config({"mcpServers": config})) as hub:
        event = await hub.route_call("calendar__create_event", {
            "calendar_id": "ada@example.com", "title": "Standup", "start": "2026-12-02T09:00:00",
            "end": "2026-12-02T09:15:00", "zone": "Europe/London"})
        assert not event.is_error, event.content
        contact = (await hub.route_call("accounting__upsert_contact", {"name": "Acme"})).structured_content
        invoice = await hub.route_call("accounting__create_invoice", {
            "contact_id": contact["id"], "lines": [{"unit_price": "10.00"}], "issue_date": "2026-03-01"})
        assert not invoice.is_error, invoice.content
        calendar = (await hub.route_call("calendar__list_changes", {"kinds": ["event"]})).structured_content
        books = (await hub.route_call("accounting__list_changes", {})).structured_content
    assert [(c["kind"], c["action"]) for c in calendar["changes"]] == [("event", "created")]
    assert [(c["kind"], c["action"]) for c in books["changes"]] == [("contact", "created"), ("invoice", "created")]
    assert books["changes"][1]["record_id"] == invoice.structured_content["invoice"]["id"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(0, 25), limit=st.integers(1, 7), kinds=st.lists(st.sampled_from(["ticket", "invoice"]), max_size=2))
async def test_cursor_walks_every_change_once(tmp_path: Path, count: int, limit: int, kinds: list[str]) -> None:
    feed = ChangeFeed(Store(tmp_path / f"walk-{uuid.uuid4().hex}.sqlite", []))
    await feed.append((("ticket", "invoice")[n % 2], str(n), "updated", "test", f"o{n}") for n in range(count))
    if count:
        await feed.append([("ticket", "0", "updated", "test", "o0")])  # same origin: counted once
    seen, cursor = [], None
    while True:
        page = await feed.page(None, kinds or None, limit, cursor)
        seen += [c.record_id for c in page.changes]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [str(n) for n in range(count) if not kinds or ("ticket", "invoice")[n % 2] in kinds]
    assert seen == expected


async def test_webhook_through_the_http_hub_shows_in_list_changes(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"ticketing": {"builtin": "ticketing"}})
    proc = Proc(hub_command(config, "--transport", "http", "--port", "0"),
                env={"MCP_HUB_DATA_DIR": str(tmp_path), "GITHUB_WEBHOOK_SECRET": SECRETS["github"]})
    try:
        url = proc.wait_for_line(r"mcp-hub listening on (\S+)").group(1)
        base = url.rsplit("/mcp", 1)[0]
        body = payload("github", "42")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            with anyio.fail_after(30):
                while (answer := await http.post("/webhooks/ticketing/github", content=body,
                                                  headers=signed("github", body))).status_code == 503:
                    await anyio.sleep(0.05)  # waiting for the in-process domain to connect
            assert answer.status_code == 200, answer.text
            forged = await http.post("/webhooks/ticketing/github", content=body, headers=signed("github", body, "wrong"))
            assert forged.status_code == 401
        async with Client(url) as client:
            with anyio.fail_after(30):
                while True:
                    result = await client.call_tool("ticketing__list_changes", {"kinds": ["ticket"]})
                    changes = result.structured_content["changes"]
                    if changes:
                        break
                    await anyio.sleep(0.05)  # waiting for the state "processed"
        assert [(c["record_id"], c["action"], c["source"]) for c in changes] == [("acme/app#42", "created", "github")]
    finally:
        proc.stop()


async def test_domain_server_over_http_takes_webhooks(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc([PY, "-m", "hub.cli", "server", "ticketing", "-t", "http", "--port", str(port), "--data-dir", str(tmp_path),
                 "--log-level", "warning"], env={"JIRA_WEBHOOK_SECRET": SECRETS["jira"]})
    try:
        wait_for_port(port)
        body = payload("jira", "9")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            accepted = await http.post("/webhooks/jira", content=body, headers=signed("jira", body))
            assert accepted.status_code == 200, accepted.text
            unset = await http.post("/webhooks/github", content=body, headers=signed("github", body))
            assert unset.status_code == 401, "ticketing takes github, but GITHUB_WEBHOOK_SECRET is not set here"
            other = await http.post("/webhooks/quickbooks", content=body, headers=signed("quickbooks", body))
            assert other.status_code == 404, "quickbooks is an accounting provider"
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            with anyio.fail_after(30):
                while not (changes := (await client.call_tool("list_changes", {})).structured_content["changes"]):
                    await anyio.sleep(0.05)  # waiting for the state "processed"
        assert [(c["record_id"], c["source"]) for c in changes] == [("OPS-9", "jira")]
    finally:
        proc.stop()
