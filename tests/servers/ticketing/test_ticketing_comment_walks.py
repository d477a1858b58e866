"""Comment walks that others change between pages (fixer ticketing28 #2): a comment deleted or added between
two pages never makes `list_comments` repeat one comment or drop another that existed throughout. Jira pages
comments by `startAt` and GitHub by page number: both shifted; Zendesk's cursors and ServiceNow's keyset did not."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from servers.kit.cursor import encode_cursor
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.servers.ticketing.test_ticketing_github import tool
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.zendesk import FakeZendesk
from servers.ticketing.providers.zendesk import ZendeskTicketing
from tests.servers.ticketing.test_ticketing_review27r2 import _jira
from tests.servers.ticketing.test_ticketing_stable_walks import _incident, _servicenow, check

pytestmark = pytest.mark.anyio


def _github(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[FakeGitHub, Any]:
    fake = FakeGitHub()
    for name, value in (("GITHUB_REPO", fake.repo), ("GITHUB_TOKEN", fake.token), ("GITHUB_API_URL", "http://github.test"),
                        ("MCP_HUB_DATA_DIR", str(tmp_path))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITHUB_REPOS", raising=False)
    return fake, create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


async def _comments(server: Any, ticket: str, n: int) -> None:
    for k in range(n):
        assert "id" in await tool(server, "add_comment", id=ticket, body=f"note {k}")


@pytest.mark.parametrize("deleted_per_page", [1, 4])
async def test_jira_comment_walk_survives_deletes_and_adds_between_pages(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, deleted_per_page: int) -> None:
    fake, server = _jira(monkeypatch, tmp_path)
    key = (await tool(server, "create_ticket", project="OPS", title="Chatty"))["id"]
    await _comments(server, key, 20)
    stored = fake.issues[key]["fields"]["comment"]["comments"]
    shown: list[str] = []
    deleted: set[str] = set()

    throughout = {c["id"] for c in stored}

    async def between(page: int) -> None:
        for _ in range(deleted_per_page):  # comments already shown go: every later one moves back
            gone = next((c for c in stored if c["id"] in shown), None)
            if gone is not None:
                stored.remove(gone)
                deleted.add(gone["id"])
        await tool(server, "add_comment", id=key, body=f"added after page {page}")

    shown = await _walk_tracking(server, key, between, shown)
    check(shown, throughout - deleted)
    added = {c["id"] for c in stored} - throughout
    assert added <= set(shown), "comments added during the walk come after the place and are listed"


async def _walk_tracking(server: Any, ticket: str, between: Any, shown: list[str]) -> list[str]:
    """`walk` over list_comments, keeping `shown` current before each `between`."""
    cursor = None
    for n in range(60):
        page = await tool(server, "list_comments", id=ticket, limit=3, **({"cursor": cursor} if cursor else {}))
        assert "code" not in page, page
        shown += [c["id"] for c in page["comments"]]
        if not (cursor := page.get("next_cursor")):
            return shown
        await between(n)
    raise AssertionError(f"the walk did not end: {shown}")


async def test_jira_comments_are_asked_oldest_first_and_a_crafted_place_is_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _jira(monkeypatch, tmp_path)
    key = (await tool(server, "create_ticket", project="OPS", title="Chatty"))["id"]
    await _comments(server, key, 3)
    page = await tool(server, "list_comments", id=key, limit=2)
    assert [c["body"] for c in page["comments"]] == ["note 0", "note 1"]
    assert fake.requests[-1]["params"]["orderBy"] == "created"
    for bad in ({"start_at": 2, "after": ["2026-11-23T10:00:01 OR 1=1", 1]}, {"start_at": 2, "after": "x"},
                {"start_at": -1}, {"start_at": 2, "after": ["2026-11-23T10:00:01.000000+00:00", True]}):
        assert (await tool(server, "list_comments", id=key, cursor=encode_cursor(bad)))["code"] == "invalid_argument", bad
    legacy = await tool(server, "list_comments", id=key, limit=2, cursor=encode_cursor({"start_at": 2}))
    assert [c["body"] for c in legacy["comments"]] == ["note 2"], "an older offset cursor still pages"


async def test_github_comment_walk_survives_deletes_and_adds_between_pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _github(monkeypatch, tmp_path)
    fake.add("Chatty")
    await _comments(server, "1", 20)
    stored = fake.comments[1]
    throughout = {str(c["id"]) for c in stored}
    shown: list[str] = []
    deleted: set[str] = set()

    async def between(page: int) -> None:
        gone = next((c for c in stored if str(c["id"]) in shown), None)
        if gone is not None:  # a comment already shown goes: GitHub's next page number starts one later
            stored.remove(gone)
            deleted.add(str(gone["id"]))
        if page == 1:  # an old comment edited meanwhile is not shown again
            stored[-1]["updated_at"] = fake._stamp()
        await tool(server, "add_comment", id="1", body=f"added after page {page}")

    shown = await _walk_tracking(server, "1", between, shown)
    check(shown, throughout - deleted)
    assert {str(c["id"]) for c in stored} - throughout <= set(shown)


async def test_github_comment_cursor_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _github(monkeypatch, tmp_path)
    fake.add("Chatty")
    for bad in ({"after": 1, "since": "2026-11-23T10:00:01Z repo:x"}, {"after": "1"}, {"after": 1, "page": 0},
                {"next": "http://github.test/repos/acme/app/issues/1/comments?page=2"}):
        answer = await tool(server, "list_comments", id="1", cursor=encode_cursor(bad))
        assert answer["code"] == "invalid_argument", (bad, answer)


# -- the siblings checked: Zendesk (cursors naming the last row) and ServiceNow (keyset) never shifted ------------


async def test_zendesk_comment_walk_survives_deletes_between_pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeZendesk()
    for name, value in (("MCP_HUB_DATA_DIR", str(tmp_path)), ("ZENDESK_SUBDOMAIN", "acme"), ("ZENDESK_EMAIL", fake.email),
                        ("ZENDESK_API_TOKEN", fake.token)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    monkeypatch.delenv("ZENDESK_BASE_URL", raising=False)
    server = create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    made = await tool(server, "create_ticket", project="Support", title="Chatty", description="first")
    for k in range(12):
        await tool(server, "add_comment", id=made["id"], body=f"note {k}")
    stored = fake.comments[int(made["id"])]
    throughout = {str(c["id"]) for c in stored}
    shown: list[str] = []
    deleted: set[str] = set()

    async def between(page: int) -> None:  # (the Zendesk fake reuses ids after a delete: no adds here)
        gone = next((c for c in stored if str(c["id"]) in shown), None)
        if gone is not None:
            stored.remove(gone)
            deleted.add(str(gone["id"]))

    shown = await _walk_tracking(server, made["id"], between, shown)
    check(shown, throughout - deleted)


async def test_servicenow_comment_walk_survives_deletes_and_adds_between_pages(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SERVICENOW_INSTANCE", "https://acme.service-now.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SERVICENOW_CLIENT_ID", raising=False)
    fake = FakeServiceNow()
    server = _servicenow(fake, monkeypatch)
    row = _incident(fake, 1, "2026-11-01 09:00:00")
    for n in range(12):
        fake.journal.append({"sys_id": secrets.token_hex(16), "element_id": row["sys_id"], "element": "comments",
                             "value": f"c{n}", "sys_created_on": f"2026-11-01 10:00:{n:02d}", "sys_created_by": "beth"})
    throughout = {j["sys_id"] for j in fake.journal}
    shown: list[str] = []
    deleted: set[str] = set()

    async def between(page: int) -> None:
        gone = next((j for j in fake.journal if j["sys_id"] in shown), None)
        if gone is not None:
            fake.journal.remove(gone)
            deleted.add(gone["sys_id"])
        await tool(server, "add_comment", id="INC0000001", body=f"later {page}")

    shown = await _walk_tracking(server, "INC0000001", between, shown)
    check(shown, throughout - deleted)
