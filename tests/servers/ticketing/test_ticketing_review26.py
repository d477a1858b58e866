"""Outside review domains26, ticketing defects 1, 3, 4, 5, 6, 8, 9, 10 and their siblings: a create answered
5xx after the provider stored it is answered as that one ticket (Jira, GitHub, Zendesk, ServiceNow); Jira's ADF
keeps links, tables and lozenges through a read-modify-write and refuses to erase what markdown cannot carry;
`resolved` never takes "Won't Do"; an internal note is never posted public; a GitHub priority change touches
only the priority label; Zendesk users are read 100 ids at a time and its 422 reasons reach the agent; a
search walk whose limit changes skips nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

import tests.fakes.jira as fake_jira
import tests.fakes.zendesk as fake_zendesk
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.jira import JiraTicketing
from servers.ticketing.providers.servicenow import ServiceNowTicketing
from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.anyio

GATEWAY_TIMEOUT = (504, {}, '{"message": "Gateway Timeout"}')


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content  # type: ignore[return-value]


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeJira, Any]:
    fake = FakeJira()
    monkeypatch.setenv("JIRA_BASE_URL", "https://acme.atlassian.net")
    monkeypatch.setenv("JIRA_EMAIL", fake.email)
    monkeypatch.setenv("JIRA_API_TOKEN", fake.token)
    monkeypatch.delenv("JIRA_OAUTH_TOKEN", raising=False)
    monkeypatch.delenv("JIRA_INTERNAL_COMMENT_ROLE", raising=False)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeGitHub, Any]:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "https://api.github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


@pytest.fixture
def zendesk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeZendesk, Any]:
    fake = FakeZendesk()
    monkeypatch.setenv("ZENDESK_BASE_URL", "https://acme.zendesk.test")
    monkeypatch.setenv("ZENDESK_EMAIL", fake.email)
    monkeypatch.setenv("ZENDESK_API_TOKEN", fake.token)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


@pytest.fixture
def servicenow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeServiceNow, Any]:
    fake = FakeServiceNow()
    monkeypatch.setenv("SERVICENOW_INSTANCE", "https://acme.service-now.test")
    monkeypatch.setenv("SERVICENOW_USER", fake.user)
    monkeypatch.setenv("SERVICENOW_PASSWORD", fake.password)
    monkeypatch.delenv("SERVICENOW_CLIENT_ID", raising=False)
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


# -- 1: a create answered 5xx after it landed is answered as the one ticket it made ---------------------------


async def test_jira_create_answered_504_after_it_landed_makes_one_issue(jira: tuple[FakeJira, Any]) -> None:
    fake, server = jira
    fake.fail_after_write.append(GATEWAY_TIMEOUT)
    made = await tool(server, "create_ticket", project="OPS", title="Printer on fire", idempotency_key="fire-1")
    assert sorted(fake.issues) == ["OPS-1"], f"one issue in Jira, got {sorted(fake.issues)}"
    assert made.get("id") == "OPS-1" and made["labels"] == [], made  # the marker label is not shown
    again = await tool(server, "create_ticket", project="OPS", title="Printer on fire", idempotency_key="fire-1")
    assert again["id"] == "OPS-1" and sorted(fake.issues) == ["OPS-1"]


async def test_jira_keyed_create_retried_after_an_unsettled_answer_finds_its_issue(jira: tuple[FakeJira, Any]) -> None:
    """The look-up after the 504 fails too: the call says so (not retryable); the same keyed call again finds the
    issue the first one made (by its marker) before posting, so a retry never makes a second one."""
    fake, _ = jira
    real = fake.app()
    failed_search = {"n": 0}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/search/jql") and fake.issues and not failed_search["n"]:
            failed_search["n"] += 1
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await real(scope, receive, send)

    server = create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=app)))
    fake.fail_after_write.append(GATEWAY_TIMEOUT)
    unsettled = await tool(server, "create_ticket", project="OPS", title="Printer on fire", idempotency_key="fire-2")
    assert unsettled["code"] == "upstream_error" and unsettled["retryable"] is False, unsettled
    retried = await tool(server, "create_ticket", project="OPS", title="Printer on fire", idempotency_key="fire-2")
    assert retried.get("id") == "OPS-1" and sorted(fake.issues) == ["OPS-1"], (retried, sorted(fake.issues))


async def test_github_zendesk_servicenow_creates_answered_5xx_after_landing_make_one(
        github: tuple[FakeGitHub, Any], zendesk: tuple[FakeZendesk, Any], servicenow: tuple[FakeServiceNow, Any]) -> None:
    gh, gh_server = github
    gh.fail_after_write.append((502, {}, '{"message": "Server Error"}'))
    made = await tool(gh_server, "create_ticket", project="acme/app", title="Crash", description="Steps", idempotency_key="gh")
    assert len(gh.issues) == 1 and made.get("id") == "1" and made["description"] == "Steps", made

    zd, zd_server = zendesk
    zd.fail_after_write.append((500, {}, '{"error": "InternalError"}'))
    made = await tool(zd_server, "create_ticket", project="Support", title="Cannot log in", description="loops", type="incident")
    assert len(zd.tickets) == 1 and made.get("id") == "1", made

    sn, sn_server = servicenow
    sn.fail_after_write.append((500, {}, '{"error": {"message": "business rule failed"}}'))
    made = await tool(sn_server, "create_ticket", project="Service Desk", title="Email down", description="x", idempotency_key="sn")
    assert len(sn.incidents) == 1 and made.get("id") == sn.incidents[0]["number"], made


# -- 3: ADF content survives a read-modify-write, or the write is refused ------------------------------------

URL = "https://status.example.com/incident/42"
RICH = {"type": "doc", "version": 1, "content": [
    {"type": "paragraph", "content": [{"type": "text", "text": "Outage, see "}, {"type": "inlineCard", "attrs": {"url": URL}}]},
    {"type": "table", "content": [
        {"type": "tableRow", "content": [
            {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Host"}]}]},
            {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Error"}]}]}]},
        {"type": "tableRow", "content": [
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "db1"}]}]},
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "OOM"}]}]}]}]},
    {"type": "paragraph", "content": [{"type": "text", "text": "State: "},
                                      {"type": "status", "attrs": {"text": "BLOCKED", "color": "red", "localId": "s1"}}]},
]}


def _kinds(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    return [str(node.get("type")), *(k for child in node.get("content") or [] for k in _kinds(child))]


async def test_jira_append_to_a_description_keeps_links_tables_and_lozenges(jira: tuple[FakeJira, Any]) -> None:
    fake, server = jira
    await tool(server, "create_ticket", project="OPS", title="DB outage")
    fake.issues["OPS-1"]["fields"]["description"] = RICH
    read = (await tool(server, "get_ticket", id="OPS-1"))["description"]
    assert URL in read and "BLOCKED" in read and "| db1 | OOM |" in read, read
    updated = await tool(server, "update_ticket", id="OPS-1", description=read + "\n\nUpdate: db1 restarted.")
    assert updated.get("description", "").endswith("Update: db1 restarted."), updated
    stored = fake.issues["OPS-1"]["fields"]["description"]
    assert URL in json.dumps(stored) and {"inlineCard", "table", "tableCell", "status"} <= set(_kinds(stored)), stored
    assert stored["content"][:3] == [{**RICH["content"][0]}, RICH["content"][1], {"type": "paragraph", "content": [
        {"type": "text", "text": "State: "}, {"type": "status", "attrs": {"text": "BLOCKED", "color": "red"}}]}]


async def test_jira_description_holding_what_markdown_cannot_carry_is_not_replaced(jira: tuple[FakeJira, Any]) -> None:
    fake, server = jira
    await tool(server, "create_ticket", project="OPS", title="Screenshot attached")
    media = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "See the screenshot"}]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "abc", "type": "file", "collection": "x"}}]}]}
    fake.issues["OPS-1"]["fields"]["description"] = media
    read = (await tool(server, "get_ticket", id="OPS-1"))["description"]
    refused = await tool(server, "update_ticket", id="OPS-1", description=read + "\n\nmore")
    assert refused["code"] == "invalid_argument" and "media" in refused["message"], refused
    assert fake.issues["OPS-1"]["fields"]["description"] == media
    assert not [r for r in fake.requests if r["method"] == "PUT"]


# -- 4: `resolved` never takes "Won't Do", and ambiguity is refused with the options ---------------------------


@pytest.fixture
def wont_do(monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = {**fake_jira.STATUSES, "Won't Do": {"name": "Won't Do", "statusCategory": {"key": "done"}},
                "Fixed": {"name": "Fixed", "statusCategory": {"key": "done"}}}
    transitions = {**fake_jira.TRANSITIONS, "51": ("Won't do", "Won't Do"), "61": ("Mark fixed", "Fixed")}
    monkeypatch.setattr(fake_jira, "STATUSES", statuses)
    monkeypatch.setattr(fake_jira, "TRANSITIONS", transitions)
    monkeypatch.setattr(fake_jira, "ALLOWED", {**fake_jira.ALLOWED, "To Do": ["11", "51", "31"], "In Progress": ["51", "31", "61"],
                                                "Won't Do": ["41"], "Fixed": ["41"]})


async def test_jira_resolved_takes_done_never_wont_do(jira: tuple[FakeJira, Any], wont_do: None) -> None:
    fake, server = jira
    await tool(server, "create_ticket", project="OPS", title="Bug fixed")
    moved = await tool(server, "transition_ticket", id="OPS-1", to="resolved")
    assert moved.get("native_status") == "Done" and moved["status"] == "resolved", moved


async def test_jira_resolved_with_two_resolving_statuses_is_refused_with_them(jira: tuple[FakeJira, Any], wont_do: None) -> None:
    fake, server = jira
    await tool(server, "create_ticket", project="OPS", title="Bug fixed")
    await tool(server, "transition_ticket", id="OPS-1", to="in_progress")
    refused = await tool(server, "transition_ticket", id="OPS-1", to="resolved")
    assert refused["code"] == "conflict" and "Mark fixed" in refused["message"] and "Won't do" not in refused["details"]["candidates"]
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "In Progress"
    named = await tool(server, "transition_ticket", id="OPS-1", to="Mark fixed")
    assert named["native_status"] == "Fixed"


# -- 5: an internal note on a project without internal comments is refused or restricted ---------------------


async def test_jira_internal_note_on_a_software_project_is_never_public(jira: tuple[FakeJira, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, server = jira
    fake.project_types["OPS"] = "software"
    await tool(server, "create_ticket", project="OPS", title="Refund")
    refused = await tool(server, "add_comment", id="OPS-1", body="card charged twice, ref 7731", public=False)
    assert refused.get("code") == "invalid_argument" and not fake.issues["OPS-1"]["fields"]["comment"]["comments"], refused
    monkeypatch.setenv("JIRA_INTERNAL_COMMENT_ROLE", "Administrators")
    note = await tool(server, "add_comment", id="OPS-1", body="card charged twice, ref 7731", public=False)
    sent = [r for r in fake.requests if r["method"] == "POST" and r["path"].endswith("/comment")][-1]["json"]
    assert sent["visibility"] == {"type": "role", "value": "Administrators"} and note["public"] is False, (sent, note)


# -- 6: a GitHub priority change touches only the priority label ----------------------------------------------


async def test_github_priority_update_keeps_a_label_added_meanwhile(github: tuple[FakeGitHub, Any]) -> None:
    fake, _ = github
    fake.add("Login broken", labels=["bug", "priority: low"])
    real = fake.app()

    async def app(scope: Any, receive: Any, send: Any) -> None:  # bob adds a label right after alice's read
        await real(scope, receive, send)
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].endswith("/issues/1"):
            issue = fake.issues[0]
            if "customer" not in [label["name"] for label in issue["labels"]]:
                issue["labels"].append({"name": "customer"})

    server = create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=app)))
    updated = await tool(server, "update_ticket", id="1", priority="high")
    names = sorted(label["name"] for label in fake.issues[0]["labels"])
    assert names == ["bug", "customer", "priority: high"], names
    assert updated.get("priority") == "high" and sorted(updated["labels"]) == ["bug", "customer"], updated


# -- 8, 9: Zendesk users 100 ids at a time; its 422 reasons reach the agent ------------------------------------


async def test_zendesk_full_page_reads_every_assignee(zendesk: tuple[FakeZendesk, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, server = zendesk
    people = [{"id": 10_000 + i, "name": f"Requester {i}", "email": f"r{i}@example.com"} for i in range(100)]
    monkeypatch.setattr(fake_zendesk, "USERS", [*fake_zendesk.USERS, *people])
    for i in range(100):
        fake.tickets.append({"id": i + 1, "subject": f"Case {i}", "description": "x", "status": "open", "priority": None, "type": "question",
                             "tags": [], "assignee_id": 501, "requester_id": 10_000 + i, "group_id": 360002, "problem_id": None,
                             "created_at": "2026-11-23T10:00:00Z", "updated_at": f"2026-11-23T10:{i // 60:02d}:{i % 60:02d}Z"})
    page = await tool(server, "search_tickets", limit=100)
    assert len(page["tickets"]) == 100 and all(t["assignee"] and t["assignee"]["id"] == "501" for t in page["tickets"]), page.get("message")
    asked = [len(r["params"]["ids"].split(",")) for r in fake.requests if r["path"].endswith("show_many.json")]
    assert asked and max(asked) <= 100 and sum(asked) == 101, asked


async def test_zendesk_validation_reason_reaches_the_agent(zendesk: tuple[FakeZendesk, Any]) -> None:
    fake, server = zendesk
    await tool(server, "create_ticket", project="Support", title="Cannot log in", description="loops", type="incident")
    fake.fail_next.append((422, {}, json.dumps({"error": "RecordInvalid", "description": "Record validation errors", "details": {
        "assignee": [{"description": "Assignee: is required when solving a ticket"}]}})))
    refused = await tool(server, "transition_ticket", id="1", to="resolved")
    assert refused["code"] == "invalid_argument" and "Assignee: is required when solving a ticket" in refused["message"], refused


# -- 10: a search walk whose limit changes skips nothing --------------------------------------------------------


async def test_github_search_walk_with_a_changed_limit_returns_every_match(github: tuple[FakeGitHub, Any]) -> None:
    fake, server = github
    for i in range(12):
        fake.add(f"login issue {i}")
    seen: list[str] = []
    page = await tool(server, "search_tickets", text="login", limit=2)
    seen += [t["id"] for t in page["tickets"]]
    while cursor := page.get("next_cursor"):
        page = await tool(server, "search_tickets", text="login", limit=5, cursor=cursor)
        seen += [t["id"] for t in page["tickets"]]
    assert sorted(seen, key=int) == [str(n) for n in range(1, 13)] and len(seen) == 12, seen


# -- 7: a walk over open issues while closing each shown one skips nothing ---------------------------------------


async def test_github_open_walk_while_closing_shows_every_issue(github: tuple[FakeGitHub, Any]) -> None:
    fake, server = github
    for i in range(6):
        fake.add(f"Stale issue {i}")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await tool(server, "search_tickets", status=["open"], limit=2, **({"cursor": cursor} if cursor else {}))
        for ticket in page["tickets"]:
            seen.append(ticket["id"])
            closed = await tool(server, "transition_ticket", id=ticket["id"], to="resolved")
            assert closed.get("status") == "resolved", closed
        if not (cursor := page.get("next_cursor")):
            break
    assert seen == ["6", "5", "4", "3", "2", "1"], f"the walk showed {seen}"


async def test_a_comment_answered_5xx_is_outcome_unknown_never_retryable(jira: tuple[FakeJira, Any], github: tuple[FakeGitHub, Any]) -> None:
    """A comment carries nothing to find it by: a 5xx answer is not retryable (the hub retries a keyed call that is),
    and says to check list_comments before adding it again."""
    fake, server = jira
    await tool(server, "create_ticket", project="OPS", title="Printer on fire")
    fake.fail_next.append(GATEWAY_TIMEOUT)
    unsure = await tool(server, "add_comment", id="OPS-1", body="Extinguisher used", idempotency_key="c1")
    assert unsure["code"] == "upstream_error" and unsure["retryable"] is False and unsure["details"]["outcome"] == "unknown", unsure
    assert "list_comments" in unsure["message"]
    gh, gh_server = github
    gh.add("Crash")
    gh.fail_next.append((502, {}, '{"message": "Server Error"}'))
    unsure = await tool(gh_server, "add_comment", id="1", body="seen it", idempotency_key="c2")
    assert unsure["code"] == "upstream_error" and unsure["retryable"] is False, unsure


async def test_jira_create_screen_without_labels_still_creates(jira: tuple[FakeJira, Any]) -> None:
    """A project whose create screen has no Labels field refuses the marker: the create is sent again without it
    (nothing was made), and its unclear answer is then `upstream_error`, never a retryable error."""
    fake, server = jira
    refusal = (400, {}, json.dumps({"errorMessages": [], "errors": {
        "labels": "Field 'labels' cannot be set. It is not on the appropriate screen, or unknown."}}))
    fake.fail_next.append(refusal)
    made = await tool(server, "create_ticket", project="OPS", title="No labels here")
    assert made.get("id") == "OPS-1" and fake.issues["OPS-1"]["fields"]["labels"] == [], made
    fake.fail_next.extend([refusal, (503, {}, "{}")])
    unsure = await tool(server, "create_ticket", project="OPS", title="Again")
    assert unsure["code"] == "upstream_error" and unsure["retryable"] is False and "search_tickets" in unsure["message"], unsure
