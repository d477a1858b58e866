"""Connector writes that used to do less than they answered (outside review writes17 #5, #6): GitHub's
`update_ticket(type=…)` sent `PATCH {}`, GitHub's `link_tickets` (annotated idempotent, so retried by
the hub) posted another comment each time; Zendesk sent any type; Jira links stay single."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.zendesk import FakeZendesk
from tests.servers.ticketing.test_ticketing import jira, jira_call  # noqa: F401 — the fixture
from tests.servers.ticketing.test_ticketing_github import github, tool  # noqa: F401 — the fixture

pytestmark = pytest.mark.anyio


async def test_github_type_alone_is_refused_not_dropped(github: tuple[FakeGitHub, Any]) -> None:  # noqa: F811
    fake, server = github
    made = await tool(server, "create_ticket", project=fake.repo, title="Crash", type="bug", labels=["ui"], priority="high")
    refused = await tool(server, "update_ticket", id=made["id"], type="enhancement")
    assert refused["code"] == "invalid_argument" and "labels" in refused["message"]
    assert refused["details"]["labels"] == ["ui", "bug"], "the labels to choose from"
    assert not [r for r in fake.requests if r["method"] == "PATCH"], "nothing sent, nothing claimed"
    changed = await tool(server, "update_ticket", id=made["id"], type="enhancement", labels=["ui"])
    assert changed["labels"] == ["ui", "enhancement"] and changed["priority"] == "high", changed
    assert [label["name"] for label in fake.issues[0]["labels"]] == ["ui", "enhancement", "priority: high"]


async def test_github_link_is_written_once(github: tuple[FakeGitHub, Any]) -> None:  # noqa: F811
    fake, server = github
    a = await tool(server, "create_ticket", project=fake.repo, title="A")
    b = await tool(server, "create_ticket", project=fake.repo, title="B")
    for n in range(120):  # the link comment lands on the second page of comments
        await tool(server, "add_comment", id=a["id"], body=f"note {n}")
    first = await tool(server, "link_tickets", id=a["id"], other_id=b["id"], type="blocks")
    again = await tool(server, "link_tickets", id=a["id"], other_id=b["id"], type="blocks")
    assert first == again == {"type": "blocks", "direction": "outward", "ticket": b["id"]}
    assert [c["body"] for c in fake.comments[int(a["id"])]].count(f"Blocks #{b['id']}") == 1
    other = await tool(server, "link_tickets", id=a["id"], other_id=b["id"], type="duplicates")
    assert other["type"] == "duplicates" and len(fake.comments[int(a["id"])]) == 122, "another link type is another comment"


async def test_jira_link_twice_keeps_one_link(jira: tuple[FakeJira, Any]) -> None:  # noqa: F811
    _, backend = jira
    server = create_server(backend)
    one = await jira_call(server, "create_ticket", project="OPS", title="one")
    two = await jira_call(server, "create_ticket", project="OPS", title="two")
    for _ in range(2):
        await jira_call(server, "link_tickets", id=one["key"], other_id=two["key"], type="blocks")
    got = await jira_call(server, "get_ticket", id=one["key"], include=["links"])
    assert len(got["links"]) == 1, got["links"]


async def test_zendesk_refuses_an_unknown_type(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeZendesk()
    for name, value in {"ZENDESK_BASE_URL": "https://acme.zendesk.test", "ZENDESK_EMAIL": fake.email,
                        "ZENDESK_API_TOKEN": fake.token, "MCP_HUB_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    server = create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    made = await tool(server, "create_ticket", project="support", title="Printer", type="question")
    refused = await tool(server, "update_ticket", id=made["id"], type="bug")
    assert refused["code"] == "invalid_argument" and "question" in refused["message"]
    assert not [r for r in fake.requests if r["method"] == "PUT"] and fake.tickets[0]["type"] == "question"
    assert (await tool(server, "update_ticket", id=made["id"], type="problem"))["type"] == "problem"
