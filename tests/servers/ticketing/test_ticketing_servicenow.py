"""The ServiceNow connector (Table API on incident) against a local fake, Basic and OAuth."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client

from servers.ticketing.providers.servicenow import ServiceNowTicketing
from servers.ticketing.server import create_server
from tests.fakes.servicenow import USERS, FakeServiceNow

pytestmark = pytest.mark.anyio


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> FakeServiceNow:
    fake = FakeServiceNow()
    monkeypatch.setenv("SERVICENOW_INSTANCE", "https://acme.service-now.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    for name in ("SERVICENOW_CLIENT_ID", "SERVICENOW_USER"):
        monkeypatch.delenv(name, raising=False)
    return fake


async def test_servicenow_incidents(env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = env
    monkeypatch.setenv("SERVICENOW_USER", fake.user)
    monkeypatch.setenv("SERVICENOW_PASSWORD", fake.password)
    server = create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))

    created = await tool(server, "create_ticket", project="Service Desk", title="Email down", description="Outlook fails",
                         priority="critical", assignee=USERS[0]["sys_id"], type="network")
    assert created["id"] == "INC0010001" and created["priority"] == "critical" and created["status"] == "open"
    assert created["assignee"]["name"] == "Beth Anglin" and created["project"] == "g" * 32
    post = next(r for r in fake.requests if r["method"] == "POST")
    assert post["json"]["impact"] == "1" and post["json"]["urgency"] == "1" and post["json"]["category"] == "network"
    assert post["json"]["assignment_group"] == "g" * 32
    bad_group = await tool(server, "create_ticket", project="Nope", title="x")
    assert bad_group["code"] == "invalid_argument" and "assignment group" in bad_group["message"]

    for n in range(3):
        await tool(server, "create_ticket", project="Service Desk", title=f"Printer {n}")
    page = await tool(server, "search_tickets", text="Printer", limit=2)
    sent = [r for r in fake.requests if r["path"] == "/api/now/table/incident" and r["method"] == "GET"][-1]["params"]
    assert sent["sysparm_query"] == "short_descriptionLIKEPrinter^ORdescriptionLIKEPrinter^ORnumber=Printer^ORDERBYDESCsys_created_on^ORDERBYDESCsys_id"
    assert sent["sysparm_limit"] == "2" and sent["sysparm_offset"] == "0" and sent["sysparm_display_value"] == "false"
    assert page["total"] == 3 and len(page["tickets"]) == 2 and page["next_cursor"]
    second = await tool(server, "search_tickets", text="Printer", limit=2, cursor=page["next_cursor"])
    assert len(second["tickets"]) == 1 and second["next_cursor"] is None
    by_state = await tool(server, "search_tickets", status=["in_progress"])
    assert by_state["tickets"] == []
    assert (await tool(server, "search_tickets", labels=["x"]))["code"] == "invalid_argument"

    moved = await tool(server, "transition_ticket", id="INC0010001", to="in_progress")
    assert moved["status"] == "in_progress" and moved["native_status"] == "In Progress"
    resolved = await tool(server, "transition_ticket", id="INC0010001", to="resolved")
    assert resolved["status"] == "resolved"
    patch = [r for r in fake.requests if r["method"] == "PATCH"][-1]["json"]
    assert patch["state"] == "6" and patch["close_code"] and patch["close_notes"]
    assert (await tool(server, "transition_ticket", id="INC0010001", to="closed"))["status"] == "closed"
    final = await tool(server, "transition_ticket", id="INC0010001", to="open")
    assert final["code"] == "conflict" and "closed incidents are final" in final["message"]

    await tool(server, "add_comment", id="INC0010002", body="Checking toner", public=True)
    note = await tool(server, "add_comment", id="INC0010002", body="Vendor ticket 123", public=False)
    assert note["public"] is False
    comments = await tool(server, "list_comments", id="INC0010002")
    assert [(c["body"], c["public"]) for c in comments["comments"]] == [("Checking toner", True), ("Vendor ticket 123", False)]
    journal_patch = [r for r in fake.requests if r["method"] == "PATCH"][-1]["json"]
    assert journal_patch == {"work_notes": "Vendor ticket 123"}

    current = await tool(server, "get_ticket", id="INC0010002", include=["comments", "transitions", "links"])
    assert current["version"] == "2" and len(current["comments"]) == 2
    assert [t["name"] for t in current["transitions"]] == ["In Progress", "On Hold", "Resolved", "Canceled"]
    stale = await tool(server, "update_ticket", id="INC0010002", title="x", expected_version="1")
    assert stale["code"] == "conflict"
    updated = await tool(server, "update_ticket", id="INC0010002", priority="low", expected_version="2")
    assert updated["priority"] == "low"
    link = await tool(server, "link_tickets", id="INC0010002", other_id="INC0010003", type="parent of")
    assert link["type"] == "parent of"
    child = await tool(server, "get_ticket", id="INC0010003", include=["links"])
    assert child["links"][0]["type"] == "child of"
    assert (await tool(server, "link_tickets", id="INC0010002", other_id="INC0010003", type="blocks"))["code"] == "invalid_argument"
    users = await tool(server, "find_users", query="beth")
    assert users["users"][0]["email"] == "beth@acme.test"
    assert (await tool(server, "get_metadata", ticket_id="INC0010003"))["native_statuses"]["On Hold"] == "on_hold"
    assert (await tool(server, "delete_ticket", id="INC0010004", confirm=True))["deleted"] is True
    assert (await tool(server, "get_ticket", id="INC0010004"))["code"] == "not_found"

    fake.fail_next.append((429, {}, '{"error": {"message": "Too many requests"}}'))  # no Retry-After: 30 s is assumed
    limited = await tool(server, "get_ticket", id="INC0010002")
    assert (limited["code"], limited["retry_after_s"]) == ("rate_limited", 30) and "Too many requests" in limited["message"]
    assert (await tool(server, "get_ticket", id="INC0010002"))["id"] == "INC0010002", "the next call goes through"
    fake.fail_next.append((500, {}, "{}"))
    assert (await tool(server, "get_ticket", id="INC0010002"))["code"] == "unavailable"


async def test_servicenow_oauth_refresh(env: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = env
    monkeypatch.setenv("SERVICENOW_CLIENT_ID", fake.client_id)
    monkeypatch.setenv("SERVICENOW_CLIENT_SECRET", fake.client_secret)
    monkeypatch.setenv("SERVICENOW_REFRESH_TOKEN", fake.refresh_token)
    app = fake.app()
    backend = ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=app), token_transport=httpx2.ASGITransport(app=app))
    server = create_server(backend)
    assert (await tool(server, "find_users", query="david"))["users"][0]["name"] == "David Loo"
    first_token = fake.access_token
    assert fake.requests[-1]["headers"]["authorization"] == f"Bearer {first_token}"
    fake.access_token = "expired"  # the instance revoked it: 401, refresh, retry
    assert (await tool(server, "find_users", query="beth"))["users"][0]["name"] == "Beth Anglin"
    assert fake.access_token not in (None, "expired", first_token)
    fake.refresh_token = "rotated-elsewhere"
    fake.access_token = "expired-again"
    denied = await tool(server, "find_users", query="beth")
    assert denied["code"] == "unauthorized" and "SERVICENOW_REFRESH_TOKEN" in denied["message"]
