"""Ticketing: every tool on the embedded backend (through the hub and standalone over stdio), and
the Jira connector against a local fake of its documented API, including its failure modes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from hub.hub import Hub
from servers.ticketing.providers.jira import JiraTicketing
from servers.ticketing.server import create_server
from servers.ticketing.store import EmbeddedTicketing
from tests.conftest import PY, ROOT
from tests.domain_support import hub_fixture, tool_caller
from tests.fakes.jira import FakeJira

pytestmark = pytest.mark.anyio


hub = hub_fixture("ticketing", seed=lambda data_dir: EmbeddedTicketing(data_dir).seed_demo())
call = tool_caller("ticketing")


async def test_embedded_tools_through_the_hub(hub: Hub) -> None:
    found = await call(hub, "search_tickets", text="VPN")
    assert [t["key"] for t in found["tickets"]] == ["OPS-1"] and found["tickets"][0]["assignee"]["name"] == "Ada Lovelace"
    first = await call(hub, "search_tickets", project="OPS", limit=1)
    assert len(first["tickets"]) == 1 and first["total"] == 2 and first["next_cursor"]
    second = await call(hub, "search_tickets", project="OPS", limit=1, cursor=first["next_cursor"])
    assert second["tickets"][0]["key"] != first["tickets"][0]["key"] and second["next_cursor"] is None
    assert (await call(hub, "search_tickets", labels=["i18n"]))["tickets"][0]["key"] == "APP-1"
    assert (await call(hub, "search_tickets", status=["closed"]))["tickets"] == []

    created = await call(hub, "create_ticket", project="OPS", title="Printer on fire", description="**urgent**",
                         priority="critical", labels=["hw"], assignee="grace@example.com", idempotency_key="k-1")
    again = await call(hub, "create_ticket", project="OPS", title="Printer on fire", description="**urgent**",
                       priority="critical", labels=["hw"], assignee="grace@example.com", idempotency_key="k-1")
    assert again["key"] == created["key"] == "OPS-3"
    assert (await call(hub, "search_tickets", text="Printer"))["total"] == 1, "an idempotent retry made one record"

    stale = created["version"]
    updated = await call(hub, "update_ticket", id="OPS-3", title="Printer on fire (3rd floor)", expected_version=stale)
    assert updated["title"].endswith("(3rd floor)") and updated["version"] != stale
    conflict = await call(hub, "update_ticket", id="OPS-3", title="lost update", expected_version=stale)
    assert conflict["code"] == "conflict" and conflict["details"]["current_version"] == updated["version"]

    moved = await call(hub, "transition_ticket", id="OPS-3", to="in progress")
    assert moved["status"] == "in_progress"
    refused = await call(hub, "transition_ticket", id="OPS-3", to="closed")
    assert refused["code"] == "conflict" and refused["details"]["allowed"] == ["open", "on_hold", "resolved"]

    note = await call(hub, "add_comment", id="OPS-3", body="Extinguisher used", public=False)
    assert note["public"] is False
    await call(hub, "add_comment", id="OPS-3", body="Customer told")
    comments = await call(hub, "list_comments", id="OPS-3", limit=1)
    assert comments["comments"][0]["body"] == "Extinguisher used" and comments["next_cursor"]
    link = await call(hub, "link_tickets", id="OPS-3", other_id="OPS-1", type="blocks")
    assert link == {"type": "blocks", "direction": "outward", "ticket": "OPS-1"}
    full = await call(hub, "get_ticket", id="OPS-1", include=["comments", "transitions", "links"])
    assert full["links"] == [{"type": "blocks", "direction": "inward", "ticket": "OPS-3"}]
    assert {t["to_status"] for t in full["transitions"]} == {"in_progress", "on_hold", "resolved", "closed"}

    meta = await call(hub, "get_metadata", ticket_id="OPS-3")
    assert "bug" in meta["types"] and meta["required_fields"] == ["project", "title"]
    assert (await call(hub, "find_users", query="grace"))["users"][0]["id"] == "u3"

    refused_delete = await call(hub, "delete_ticket", id="OPS-3")
    assert refused_delete["code"] == "invalid_argument" and "confirm=true" in refused_delete["message"]
    assert (await call(hub, "delete_ticket", id="OPS-3", confirm=True)) == {"id": "OPS-3", "deleted": True}
    gone = await call(hub, "get_ticket", id="OPS-3")
    assert gone["code"] == "not_found"


async def test_bad_input_is_a_clear_error_and_writes_nothing(hub: Hub) -> None:
    assert (await call(hub, "create_ticket", project="OPS", title="x" * 300))["code"] == "invalid_argument"
    assert (await call(hub, "create_ticket", project="OPS", title="t", priority="urgent"))["code"] == "invalid_argument"
    assert (await call(hub, "create_ticket", project="OPS", title="t", type="epic"))["code"] == "invalid_argument"
    bad_user = await call(hub, "create_ticket", project="OPS", title="t", assignee="nobody@example.com")
    assert bad_user["code"] == "invalid_argument" and "find_users" in bad_user["message"]
    assert (await call(hub, "search_tickets", project="OPS"))["total"] == 2, "no partial write"
    assert (await call(hub, "search_tickets", cursor="garbage!"))["code"] == "invalid_argument"
    assert (await call(hub, "update_ticket", id="OPS-1"))["code"] == "invalid_argument"
    assert (await call(hub, "transition_ticket", id="NOPE-9", to="open"))["code"] == "not_found"
    assert (await call(hub, "search_tickets", native_query="project = OPS"))["code"] == "invalid_argument"


async def test_standalone_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=PY, args=["-m", "hub.cli", "server", "ticketing", "--demo", "--data-dir", str(tmp_path), "--log-level", "warning"],
        env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT),
    )
    async with Client(params) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert len(tools) == 13 and tools["search_tickets"].annotations.read_only_hint is True
        assert tools["create_project"].annotations.idempotent_hint is True
        assert tools["delete_ticket"].annotations.destructive_hint is True
        assert tools["get_ticket"].output_schema is not None
        result = await client.call_tool("search_tickets", {"text": "certificate"})
        assert result.structured_content["tickets"][0]["key"] == "OPS-2"


# -- Jira ----------------------------------------------------------------------------------


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeJira, JiraTicketing]:
    fake = FakeJira()
    monkeypatch.setenv("JIRA_BASE_URL", "https://acme.atlassian.net")
    monkeypatch.setenv("JIRA_EMAIL", fake.email)
    monkeypatch.setenv("JIRA_API_TOKEN", fake.token)
    monkeypatch.delenv("JIRA_OAUTH_TOKEN", raising=False)
    return fake, JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app()))


async def jira_call(server: Any, tool: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(tool, args)).structured_content


async def test_jira_connector_sends_the_documented_requests(jira: tuple[FakeJira, JiraTicketing]) -> None:
    fake, backend = jira
    server = create_server(backend)
    created = await jira_call(server, "create_ticket", project="OPS", title="VPN flaps", type="bug", priority="high",
                              description="Seen on **gw-2**:\n\n- every hour", labels=["net"], assignee="acc-1")
    assert created["key"] == "OPS-1" and created["status"] == "open" and created["priority"] == "high"
    assert created["description"] == "Seen on **gw-2**:\n\n- every hour"
    sent = next(r for r in fake.requests if r["method"] == "POST" and r["path"].endswith("/issue"))
    assert sent["headers"]["authorization"] == "Basic " + base64.b64encode(f"{fake.email}:{fake.token}".encode()).decode()
    fields = sent["json"]["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Bug"} and fields["priority"] == {"name": "High"}
    assert fields["description"]["type"] == "doc" and fields["assignee"] == {"accountId": "acc-1"}
    assert fields["description"]["content"][0]["content"][1] == {"type": "text", "text": "gw-2", "marks": [{"type": "strong"}]}

    for n in range(4):
        await jira_call(server, "create_ticket", project="OPS", title=f"filler {n}")
    first = await jira_call(server, "search_tickets", project="OPS", text="filler", limit=3)
    search = [r for r in fake.requests if r["path"].endswith("/search/jql")][-1]
    assert search["params"]["jql"] == 'project = "OPS" AND text ~ "filler" ORDER BY created DESC, key DESC'
    assert search["params"]["maxResults"] == "3" and "nextPageToken" not in search["params"]
    assert len(first["tickets"]) == 3 and first["next_cursor"]
    second = await jira_call(server, "search_tickets", project="OPS", text="filler", limit=3, cursor=first["next_cursor"])
    assert [r for r in fake.requests if r["path"].endswith("/search/jql")][-1]["params"]["nextPageToken"] == "3"
    assert len(second["tickets"]) == 1 and second["next_cursor"] is None
    native = await jira_call(server, "search_tickets", native_query="assignee = currentUser()")
    assert [r for r in fake.requests if r["path"].endswith("/search/jql")][-1]["params"]["jql"] == "assignee = currentUser()"
    assert len(native["tickets"]) == 5  # the fake ignores JQL it does not model; what matters is what was sent

    moved = await jira_call(server, "transition_ticket", id="OPS-1", to="in_progress")
    assert moved["status"] == "in_progress" and moved["native_status"] == "In Progress"
    posted = [r for r in fake.requests if r["path"].endswith("/transitions") and r["method"] == "POST"][-1]
    assert posted["json"] == {"transition": {"id": "11"}}
    waiting = await jira_call(server, "transition_ticket", id="OPS-1", to="Wait for customer")
    assert waiting["status"] == "on_hold"
    refused = await jira_call(server, "transition_ticket", id="OPS-1", to="resolved")
    assert refused["code"] == "conflict" and refused["details"]["allowed"] == ["Start progress"]

    note = await jira_call(server, "add_comment", id="OPS-1", body="internal *note*", public=False)
    assert note["public"] is False and note["body"] == "internal *note*"
    comment_post = [r for r in fake.requests if r["path"].endswith("/comment") and r["method"] == "POST"][-1]
    assert comment_post["json"]["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]
    await jira_call(server, "add_comment", id="OPS-1", body="public follow-up")
    first_page = await jira_call(server, "list_comments", id="OPS-1", limit=1)
    assert [c["body"] for c in first_page["comments"]] == ["internal *note*"] and first_page["next_cursor"]
    second_page = await jira_call(server, "list_comments", id="OPS-1", limit=1, cursor=first_page["next_cursor"])
    # one before the place, to check the last comment shown is still there (jira_comments), oldest first
    assert fake.requests[-1]["params"] == {"startAt": "0", "maxResults": "2", "orderBy": "created"}
    assert [c["body"] for c in second_page["comments"]] == ["public follow-up"] and second_page["next_cursor"] is None
    await jira_call(server, "link_tickets", id="OPS-1", other_id="OPS-2", type="blocks")
    linked = await jira_call(server, "get_ticket", id="OPS-2", include=["links", "comments", "transitions"])
    assert linked["links"] == [{"type": "is blocked by", "direction": "inward", "ticket": "OPS-1"}]
    assert [t["name"] for t in linked["transitions"]] == ["Start progress", "Resolve"]

    stale = await jira_call(server, "update_ticket", id="OPS-1", title="renamed", expected_version="2026-01-01T00:00:00.000+0000")
    assert stale["code"] == "conflict"
    renamed = await jira_call(server, "update_ticket", id="OPS-1", title="renamed", expected_version=waiting["version"])
    assert renamed["title"] == "renamed"
    users = await jira_call(server, "find_users", query="ada")
    assert users["users"] == [{"id": "acc-1", "name": "Ada Lovelace", "email": "ada@example.com"}]
    meta = await jira_call(server, "get_metadata", project="OPS")
    assert meta["native_statuses"]["Waiting for customer"] == "on_hold" and meta["types"] == ["Task", "Bug"]
    assert (await jira_call(server, "delete_ticket", id="OPS-5", confirm=True))["deleted"] is True
    assert (await jira_call(server, "get_ticket", id="OPS-5"))["code"] == "not_found"


async def test_jira_failure_modes(jira: tuple[FakeJira, JiraTicketing], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, backend = jira
    server = create_server(backend)
    await jira_call(server, "create_ticket", project="OPS", title="one")

    fake.fail_next.append((429, {"Retry-After": "0.2"}, '{"errorMessages": ["Rate limit exceeded"]}'))
    busy = await jira_call(server, "get_ticket", id="OPS-1")  # at once, one request: the hub retries (servers/kit/http.py)
    assert (busy["code"], busy["retry_after_s"]) == ("rate_limited", 0.2) and "Rate limit exceeded" in busy["message"]
    ok = await jira_call(server, "get_ticket", id="OPS-1")
    assert ok["key"] == "OPS-1"
    assert [r["path"] for r in fake.requests[-2:]] == ["/rest/api/3/issue/OPS-1"] * 2

    fake.fail_next.extend([(429, {"Retry-After": "120"}, "{}")])
    limited = await jira_call(server, "get_ticket", id="OPS-1")
    assert limited["code"] == "rate_limited" and limited["retry_after_s"] == 120

    fake.fail_next.append((503, {}, "{}"))
    down = await jira_call(server, "get_ticket", id="OPS-1")
    assert down["code"] == "unavailable" and down["retryable"] is True

    before = len(fake.requests)
    fake.fail_next.append((503, {}, "{}"))
    write = await jira_call(server, "create_ticket", project="OPS", title="not twice")
    sent = [(r["method"], r["path"]) for r in fake.requests[before:]]  # one POST, then a look-up of its marker, never a 2nd POST
    assert write["code"] == "unavailable" and sent == [("POST", "/rest/api/3/issue"), ("GET", "/rest/api/3/search/jql")], sent

    fake.fail_next.append((200, {}, "{not json"))
    garbled = await jira_call(server, "get_ticket", id="OPS-1")
    assert garbled["code"] == "upstream_error" and "not JSON" in garbled["message"]

    before = len(fake.requests)
    blank = await jira_call(server, "create_ticket", project="OPS", title=" \u200b")  # blank: refused before any request
    assert blank["code"] == "invalid_argument" and len(fake.requests) == before
    fake.fail_next.append((400, {}, '{"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}'))
    bad = await jira_call(server, "create_ticket", project="OPS", title="Jira refuses this one")
    assert bad["code"] == "invalid_argument" and "summary: You must specify a summary" in bad["message"]

    monkeypatch.setenv("JIRA_API_TOKEN", "expired-token-value")
    expired = create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    denied = await jira_call(expired, "get_ticket", id="OPS-1")
    assert denied["code"] == "unauthorized" and "re-authorise" in denied["message"]
    assert "expired-token-value" not in str(denied) and fake.token not in str(denied)
    assert (await jira_call(server, "get_ticket", id="OPS-404"))["code"] == "not_found"
