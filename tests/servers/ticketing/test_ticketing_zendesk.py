"""The Zendesk connector against a local fake of the Support API."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from mcp import Client

from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.anyio


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content


async def test_zendesk(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeZendesk()
    monkeypatch.setenv("ZENDESK_BASE_URL", "https://acme.zendesk.test")
    monkeypatch.setenv("ZENDESK_EMAIL", fake.email)
    monkeypatch.setenv("ZENDESK_API_TOKEN", fake.token)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))

    first = await tool(server, "create_ticket", project="support", title="Cannot log in", description="Password reset loops",
                       priority="high", type="incident", labels=["login"], assignee="501", idempotency_key="z1")
    again = await tool(server, "create_ticket", project="support", title="Cannot log in", description="Password reset loops",
                       priority="high", type="incident", labels=["login"], assignee="501", idempotency_key="z1")
    assert again["id"] == first["id"] == "1"
    post = next(r for r in fake.requests if r["method"] == "POST")
    assert post["headers"]["authorization"] == "Basic " + base64.b64encode(f"{fake.email}/token:{fake.token}".encode()).decode()
    assert post["json"]["ticket"].pop("external_id").startswith("mcph-")  # the create's marker (`providers.created`)
    assert post["json"]["ticket"] == {"subject": "Cannot log in", "comment": {"body": "Password reset loops"}, "type": "incident",
                                      "tags": ["login"], "priority": "high", "assignee_id": 501, "group_id": 360002}  # "support" is the Support group
    assert first["assignee"]["name"] == "Agent Smith" and first["reporter"]["name"] == "Customer Jones"
    problem = await tool(server, "create_ticket", project="support", title="SSO outage", type="problem")
    for n in range(3):
        await tool(server, "create_ticket", project="support", title=f"Refund {n}", type="question")

    page = await tool(server, "search_tickets", limit=2)
    assert fake.requests[-2]["params"] == {"page[size]": "2", "sort": "-id"} and page["next_cursor"]  # a stable key
    rest = await tool(server, "search_tickets", limit=4, cursor=page["next_cursor"])
    assert len(page["tickets"]) + len(rest["tickets"]) == 5 and rest["next_cursor"] is None
    found = await tool(server, "search_tickets", text="Refund", status=["open"], limit=2)
    sent = [r for r in fake.requests if r["path"].endswith("/search/export.json")][-1]["params"]
    assert sent["query"] == "type:ticket Refund status:new status:open" and sent["filter[type]"] == "ticket"
    assert sent["page[size]"] == "2" and len(found["tickets"]) == 2 and found["next_cursor"] and found["truncated"] is False
    rest = await tool(server, "search_tickets", text="Refund", status=["open"], limit=2, cursor=found["next_cursor"])
    assert len(rest["tickets"]) == 1 and rest["next_cursor"] is None

    note = await tool(server, "add_comment", id="1", body="Checked SSO logs", public=False)
    assert note["public"] is False and note["body"] == "Checked SSO logs"
    comments = await tool(server, "list_comments", id="1")
    assert [(c["body"], c["public"], c["author"]) for c in comments["comments"]] == [
        ("Password reset loops", True, "Customer Jones"), ("Checked SSO logs", False, "Agent Smith")]
    held = await tool(server, "transition_ticket", id="1", to="on_hold")
    assert held["status"] == "on_hold" and held["native_status"] == "hold"
    stale = await tool(server, "update_ticket", id="1", title="x", expected_version="2020-01-01T00:00:00Z")
    assert stale["code"] == "conflict"
    sent = [r for r in fake.requests if r["method"] == "PUT"][-1]["json"]["ticket"]
    assert sent["safe_update"] is True and sent["updated_stamp"] == "2020-01-01T00:00:00Z"
    renamed = await tool(server, "update_ticket", id="1", title="Cannot log in (SSO)", expected_version=held["version"])
    assert renamed["title"] == "Cannot log in (SSO)"
    linked = await tool(server, "link_tickets", id="1", other_id=problem["id"], type="incident of")
    assert linked["ticket"] == problem["id"]
    assert (await tool(server, "get_ticket", id="1", include=["links"]))["links"][0]["ticket"] == problem["id"]
    assert (await tool(server, "link_tickets", id="1", other_id="3", type="incident of"))["code"] == "invalid_argument"
    assert (await tool(server, "transition_ticket", id="1", to="resolved"))["status"] == "resolved"
    assert (await tool(server, "transition_ticket", id="1", to="closed"))["status"] == "closed"
    frozen = await tool(server, "transition_ticket", id="1", to="open")
    assert frozen["code"] == "conflict" and "closed tickets cannot change" in frozen["message"]
    assert (await tool(server, "find_users", query="smith"))["users"][0]["id"] == "501"
    assert (await tool(server, "get_metadata", ticket_id="2"))["transitions"][0]["native_to"] == "open"
    assert (await tool(server, "delete_ticket", id="5", confirm=True))["deleted"] is True
    assert (await tool(server, "get_ticket", id="5"))["code"] == "not_found"
    assert (await tool(server, "get_ticket", id="abc"))["code"] == "invalid_argument"
    fake.fail_next.append((429, {"Retry-After": "0"}, "{}"))  # answered at once, retryable; the hub retries
    assert (await tool(server, "get_ticket", id="2"))["code"] == "rate_limited"
    assert (await tool(server, "get_ticket", id="2"))["id"] == "2"
    fake.fail_next.append((422, {}, '{"error": "RecordInvalid", "description": "Subject: cannot be blank"}'))
    invalid = await tool(server, "update_ticket", id="2", title="y")
    assert invalid["code"] == "invalid_argument" and "cannot be blank" in invalid["message"]
