"""A move to the status a ticket already has writes nothing and answers the ticket, on every backend:
an agent retrying a `transition_ticket` whose answer was lost got `conflict` ("is resolved and cannot
move to 'resolved'") for a move that had landed, and providers without a same-status transition said
the same (outside review domains18, a seen item: Zendesk "in_progress" on an open ticket)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.jira import JiraTicketing
from servers.ticketing.providers.servicenow import ServiceNowTicketing
from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from servers.ticketing.store import EmbeddedTicketing
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.anyio


def backend(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Any, Any, str]:
    """(server, fake or None, a project) for `kind`, on its local fake."""
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    if kind == "embedded":
        return create_server(EmbeddedTicketing(tmp_path)), None, "OPS"
    if kind == "jira":
        fake: Any = FakeJira()
        for name, value in (("JIRA_BASE_URL", "https://acme.atlassian.net"), ("JIRA_EMAIL", fake.email), ("JIRA_API_TOKEN", fake.token)):
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("JIRA_OAUTH_TOKEN", raising=False)
        return create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app()))), fake, "OPS"
    if kind == "servicenow":
        fake = FakeServiceNow()
        monkeypatch.setenv("SERVICENOW_INSTANCE", "https://acme.service-now.test")
        monkeypatch.delenv("SERVICENOW_CLIENT_ID", raising=False)
        monkeypatch.setenv("SERVICENOW_USER", fake.user)
        monkeypatch.setenv("SERVICENOW_PASSWORD", fake.password)
        return create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=fake.app()))), fake, "Service Desk"
    if kind == "zendesk":
        fake = FakeZendesk()
        for name, value in (("ZENDESK_BASE_URL", "https://acme.zendesk.test"), ("ZENDESK_EMAIL", fake.email),
                            ("ZENDESK_API_TOKEN", fake.token)):
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
        return create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app()))), fake, "Support"
    fake = FakeGitHub()
    for name, value in (("GITHUB_REPO", fake.repo), ("GITHUB_TOKEN", fake.token), ("GITHUB_API_URL", "https://api.github.test")):
        monkeypatch.setenv(name, value)
    return create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app()))), fake, fake.repo


def writes(fake: Any) -> int:
    return sum(1 for r in fake.requests if r["method"] != "GET") if fake is not None else 0


@pytest.mark.parametrize("kind", ["embedded", "jira", "servicenow", "zendesk", "github"])
async def test_a_move_to_the_status_a_ticket_has_writes_nothing_and_answers_it(
        kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, fake, project = backend(kind, monkeypatch, tmp_path)

    async def call(tool: str, **args: Any) -> dict[str, Any]:
        return (await server.call_tool(tool, args)).structured_content  # type: ignore[no-any-return]

    if kind == "embedded":
        await call("create_project", key=project)
    made = await call("create_ticket", project=project, title="Same status twice")
    assert "id" in made, made
    moved = await call("transition_ticket", id=made["id"], to="resolved")
    assert moved.get("status") == "resolved", moved
    before = writes(fake)
    again = await call("transition_ticket", id=made["id"], to="Resolved")
    assert again.get("status") == "resolved" and again.get("version") == moved["version"], again
    assert writes(fake) == before, "nothing was written"


async def test_a_jira_move_between_two_statuses_of_one_kind_is_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """"In Review" and "In Progress" are both in_progress: a move from one to the other is a real transition,
    never answered as "already there" (re-check 19 #1: nothing moved and success was answered)."""
    from tests.fakes import jira as fake_jira

    monkeypatch.setitem(fake_jira.STATUSES, "In Review", {"name": "In Review", "statusCategory": {"key": "indeterminate"}})
    monkeypatch.setitem(fake_jira.TRANSITIONS, "61", ("Submit for review", "In Review"))
    monkeypatch.setitem(fake_jira.TRANSITIONS, "51", ("Back to progress", "In Progress"))
    monkeypatch.setitem(fake_jira.ALLOWED, "In Progress", [*fake_jira.ALLOWED["In Progress"], "61"])
    monkeypatch.setitem(fake_jira.ALLOWED, "In Review", ["51", "31"])
    server, fake, project = backend("jira", monkeypatch, tmp_path)

    async def call(tool: str, **args: Any) -> dict[str, Any]:
        return (await server.call_tool(tool, args)).structured_content  # type: ignore[no-any-return]

    made = await call("create_ticket", project=project, title="Two of a kind")
    assert (await call("transition_ticket", id=made["id"], to="In Progress")).get("native_status") == "In Progress"
    review = await call("transition_ticket", id=made["id"], to="In Review")
    assert (review.get("native_status"), review.get("status")) == ("In Review", "in_progress"), review
    moved = await call("transition_ticket", id=made["id"], to="in_progress")
    assert moved.get("native_status") == "In Progress", moved
