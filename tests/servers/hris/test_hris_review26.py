"""Outside review domains26, HRIS defects 2, 7 and 9 (BambooHR): a time-off request answered 503 after
BambooHR stored it is answered as that request (never a conflict with itself); a walk over pending
requests while approving them shows every one; BambooHR's refusal reason (its error header) reaches the agent;
Workday's time-off request is settled like BambooHR's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp import Client

from servers.hris.privacy import PrivacyPolicy
from servers.hris.providers.bamboohr import BambooHris
from servers.hris.providers.workday import WorkdayHris
from servers.hris.server import create_server
from tests.fakes.bamboohr import FakeBamboo
from tests.fakes.workday import FakeWorkday

pytestmark = pytest.mark.anyio


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content  # type: ignore[return-value]


@pytest.fixture
def bamboo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeBamboo, Any]:
    fake = FakeBamboo()
    monkeypatch.setenv("BAMBOOHR_COMPANY", fake.company)
    monkeypatch.setenv("BAMBOOHR_API_KEY", fake.key)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    backend = BambooHris.from_env(transport=httpx.ASGITransport(app=fake.app()))
    return fake, create_server(backend, PrivacyPolicy(frozenset({"leave_reason"})))


async def test_bamboohr_request_answered_503_after_it_was_stored_is_that_request(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, server = bamboo
    fake.fail_after_write.append((503, {"Retry-After": "1"}, "{}"))
    made = await tool(server, "request_time_off", employee_id="40", type="vacation", start="2027-03-08", end="2027-03-09",
                      idempotency_key="ann-march")
    assert len(fake.time_off) == 1, fake.time_off
    assert made.get("request", {}).get("id") == fake.time_off[0]["id"], f"the stored request is the answer, got {made}"
    puts = [r for r in fake.requests if r["method"] == "PUT" and r["path"].endswith("/time_off/request")]
    assert len(puts) == 1


async def test_bamboohr_request_refused_503_before_storing_stays_retryable(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, _ = bamboo
    real = fake.app()

    async def app(scope: Any, receive: Any, send: Any) -> None:  # BambooHR's throttling 503 on the PUT: nothing stored
        if scope["type"] == "http" and scope["method"] == "PUT" and scope["path"].endswith("/time_off/request"):
            await send({"type": "http.response.start", "status": 503, "headers": [(b"retry-after", b"1"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await real(scope, receive, send)

    server = create_server(BambooHris.from_env(transport=httpx.ASGITransport(app=app)), PrivacyPolicy(frozenset({"leave_reason"})))
    refused = await tool(server, "request_time_off", employee_id="40", type="vacation", start="2027-03-08", end="2027-03-09")
    assert refused["code"] == "unavailable" and refused["retryable"] is True and not fake.time_off, refused


async def test_bamboohr_pending_walk_while_approving_shows_every_request(bamboo: tuple[FakeBamboo, Any]) -> None:
    fake, server = bamboo
    for i in range(6):
        day = f"2027-01-{11 + i:02d}"
        fake.time_off.append({"id": str(101 + i), "employeeId": "40", "name": "Grace Hopper", "status": {"status": "requested"},
                              "start": day, "end": day, "created": "2026-11-23", "type": {"id": "78", "name": "Vacation"},
                              "amount": {"unit": "hours", "amount": "8"}, "notes": {}})
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        args: dict[str, Any] = {"status": "requested", "start": "2027-01-01", "end": "2027-01-31", "limit": 2}
        if cursor:
            args["cursor"] = cursor
        page = await tool(server, "list_time_off_requests", **args)
        for row in page["requests"]:
            seen.append(row["id"])
            decided = await tool(server, "decide_time_off", request_id=row["id"], decision="approve", confirm=True)
            assert decided.get("status") == "approved", decided
        if not (cursor := page.get("next_cursor")):
            break
    assert seen == ["101", "102", "103", "104", "105", "106"], f"the walk showed {seen}"


async def test_bamboohr_refusal_reason_from_its_error_header_reaches_the_agent(bamboo: tuple[FakeBamboo, Any]) -> None:
    reason = "Time off request exceeds the available balance for Vacation"
    fake, _ = bamboo
    original = fake.app()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT" and scope["path"].endswith("/time_off/request"):
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"x-bamboohr-error-message", reason.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await original(scope, receive, send)

    server = create_server(BambooHris.from_env(transport=httpx.ASGITransport(app=app)), PrivacyPolicy(frozenset({"leave_reason"})))
    refused = await tool(server, "request_time_off", employee_id="40", type="vacation", start="2027-02-15", end="2027-02-16")
    assert refused["code"] == "invalid_argument" and reason in refused["message"], refused
    assert not fake.time_off


async def test_workday_request_answered_504_after_it_was_stored_is_that_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeWorkday()
    for name, value in {"WORKDAY_HOST": "http://wd.test", "WORKDAY_TENANT": fake.tenant, "WORKDAY_CLIENT_ID": fake.client_id,
                        "WORKDAY_CLIENT_SECRET": fake.client_secret, "WORKDAY_REFRESH_TOKEN": fake.refresh_token,
                        "MCP_HUB_SECRET_KEY": Fernet.generate_key().decode(), "MCP_HUB_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    app = fake.app()
    backend = WorkdayHris.from_env(tmp_path, transport=httpx.ASGITransport(app=app), token_transport=httpx2.ASGITransport(app=app))
    server = create_server(backend, PrivacyPolicy(frozenset({"leave_reason"})))
    fake.fail_after_write.append((504, {}, '{"error": "Gateway Timeout"}'))
    before = len(fake.details)
    made = await tool(server, "request_time_off", employee_id="w001", type="vacation", start="2027-03-08", end="2027-03-09",
                      idempotency_key="w-march")
    assert len(fake.details) == before + 1, fake.details
    assert made.get("request", {}).get("id") == fake.details[-1]["id"], f"the stored request is the answer, got {made}"
