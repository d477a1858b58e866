"""Assignees given as an email on the provider connectors (outside review 8, defect 4): Jira,
ServiceNow and Zendesk look the email up and send their own user id; GitHub refuses an email;
no or several matching users is `invalid_argument` and nothing is written. Also transition_ticket's
expected_version on a provider."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import Client

from servers.kit.errors import DomainError
from servers.ticketing.model import User
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.jira import JiraTicketing
from servers.ticketing.providers.servicenow import ServiceNowTicketing
from servers.ticketing.providers.users import one_user
from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import USERS as SN_USERS
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.zendesk import FakeZendesk

pytestmark = pytest.mark.anyio


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content


def provider_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str], unset: tuple[str, ...] = ()) -> None:
    """Point a connector at its fake: set `values`; unset what would pick another way to log in."""
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in unset:
        monkeypatch.delenv(name, raising=False)


def writes(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] in ("POST", "PUT", "PATCH")]


async def test_jira_resolves_an_email_to_the_account_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeJira()
    provider_env(monkeypatch, {"JIRA_BASE_URL": "https://acme.atlassian.net", "JIRA_EMAIL": fake.email,
                               "JIRA_API_TOKEN": fake.token, "MCP_HUB_DATA_DIR": str(tmp_path)}, unset=("JIRA_OAUTH_TOKEN",))
    server = create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    created = await tool(server, "create_ticket", project="OPS", title="assign me", assignee="ADA@example.com")
    assert created["assignee"] == {"id": "acc-1", "name": "Ada Lovelace", "email": "ada@example.com"}
    assert writes(fake.requests)[-1]["json"]["fields"]["assignee"] == {"accountId": "acc-1"}
    await tool(server, "update_ticket", id=created["id"], assignee="")
    updated = await tool(server, "update_ticket", id=created["id"], assignee="ada@example.com")
    assert updated["assignee"]["id"] == "acc-1"
    assert writes(fake.requests)[-1]["json"]["fields"]["assignee"] == {"accountId": "acc-1"}

    sent = len(writes(fake.requests))
    unknown = await tool(server, "update_ticket", id=created["id"], assignee="nobody@example.com")
    assert unknown["code"] == "invalid_argument" and "find_users" in unknown["message"]
    assert unknown["details"] == {"field": "assignee"} and len(writes(fake.requests)) == sent, "nothing sent"
    bad_id = await tool(server, "update_ticket", id=created["id"], assignee="acc-404")
    assert bad_id["code"] == "invalid_argument" and "acc-404" in bad_id["message"], "the fake refuses an unknown accountId as Jira does"

    stale = await tool(server, "transition_ticket", id=created["id"], to="in_progress", expected_version=created["version"])
    assert stale["code"] == "conflict" and (await tool(server, "get_ticket", id=created["id"]))["status"] == "open"
    current = (await tool(server, "get_ticket", id=created["id"]))["version"]
    assert (await tool(server, "transition_ticket", id=created["id"], to="in_progress", expected_version=current))["status"] == "in_progress"


async def test_servicenow_and_zendesk_resolve_an_email_github_refuses_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    now = FakeServiceNow()
    provider_env(monkeypatch, {"SERVICENOW_INSTANCE": "https://acme.service-now.test", "SERVICENOW_USER": now.user,
                               "SERVICENOW_PASSWORD": now.password}, unset=("SERVICENOW_CLIENT_ID",))
    server = create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=now.app())))
    created = await tool(server, "create_ticket", project="Service Desk", title="Email down", assignee="Beth@ACME.test")
    assert created["assignee"]["id"] == SN_USERS[0]["sys_id"] and writes(now.requests)[-1]["json"]["assigned_to"] == SN_USERS[0]["sys_id"]
    moved = await tool(server, "update_ticket", id=created["id"], assignee="david@acme.test")
    assert moved["assignee"]["name"] == "David Loo"
    assert (await tool(server, "update_ticket", id=created["id"], assignee="eve@acme.test"))["code"] == "invalid_argument"
    stale = await tool(server, "transition_ticket", id=created["id"], to="in_progress", expected_version=created["version"])
    assert stale["code"] == "conflict" and stale["details"] == {"current_version": moved["version"]}

    desk = FakeZendesk()
    provider_env(monkeypatch, {"ZENDESK_BASE_URL": "https://acme.zendesk.test", "ZENDESK_EMAIL": desk.email,
                               "ZENDESK_API_TOKEN": desk.token}, unset=("ZENDESK_OAUTH_TOKEN",))
    server = create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=desk.app())))
    ticket = await tool(server, "create_ticket", project="support", title="Cannot log in", type="incident", assignee="SMITH@acme.test")
    assert writes(desk.requests)[-1]["json"]["ticket"]["assignee_id"] == 501 and ticket["assignee"]["name"] == "Agent Smith"
    await tool(server, "update_ticket", id=ticket["id"], assignee="502")
    assert writes(desk.requests)[-1]["json"]["ticket"]["assignee_id"] == 502, "a numeric id is sent as a number"
    stale = await tool(server, "transition_ticket", id=ticket["id"], to="in_progress", expected_version=ticket["version"])
    assert stale["code"] == "conflict" and (await tool(server, "get_ticket", id=ticket["id"]))["status"] == "open"

    hub_fake = FakeGitHub()
    provider_env(monkeypatch, {"GITHUB_REPO": hub_fake.repo, "GITHUB_TOKEN": hub_fake.token, "GITHUB_API_URL": "http://github.test"})
    server = create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=hub_fake.app())))
    refused = await tool(server, "create_ticket", project=hub_fake.repo, title="x", assignee="octo@example.com")
    assert refused["code"] == "invalid_argument" and "login" in refused["message"] and not writes(hub_fake.requests)


def test_one_user_takes_the_exact_email_and_names_several() -> None:
    ada = User(id="acc-1", name="Ada Lovelace", email="ada@example.com")
    adab = User(id="acc-2", name="Ada Byron", email="ada@example.com.au")
    assert one_user("Ada@Example.com", [adab, ada], "Jira") is ada, "a longer email found by prefix is not the user"
    hidden = User(id="acc-3", name="Private", email=None)
    assert one_user("private@example.com", [hidden], "Jira") is hidden, "Jira hides some emails but matches on them"
    with pytest.raises(DomainError) as several:
        one_user("ada@example.com", [ada, ada.model_copy(update={"id": "acc-9"})], "Jira")
    assert several.value.body.code == "invalid_argument" and "acc-9" in several.value.body.message

