"""Provider listings walked by a stable key (outside review domains27 #1): a ticket created, closed,
updated or deleted between two pages never makes a walk repeat one ticket or drop another that existed
throughout (ServiceNow `sysparm_offset`, Zendesk search `page=` and `sort=-updated_at` cursors, GitHub
search `page=`, Jira's `ORDER BY updated` did)."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.jira import JiraTicketing
from servers.ticketing.providers.servicenow import ServiceNowTicketing
from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import GROUPS, FakeServiceNow
from tests.fakes.zendesk import FakeZendesk
from tests.servers.ticketing.test_ticketing_servicenow import tool

pytestmark = pytest.mark.anyio


async def walk(server: Any, tool_name: str, between: Callable[[int], Awaitable[None]], **args: Any) -> list[str]:
    """Every id a full walk returns, calling `between(page number)` after each page."""
    seen: list[str] = []
    cursor = None
    for n in range(60):
        page = await tool(server, tool_name, **args, **({"cursor": cursor} if cursor else {}))
        assert "code" not in page, page
        seen += [t["id"] for t in page.get("tickets", page.get("comments", []))]
        if not (cursor := page.get("next_cursor")):
            return seen
        await between(n)
    raise AssertionError(f"the walk did not end: {seen}")


def check(seen: list[str], throughout: set[str]) -> None:
    repeated = sorted(k for k, v in Counter(seen).items() if v > 1)
    missing = sorted(throughout - set(seen))
    assert not repeated and not missing, f"repeated {repeated}, missing {missing} (walk: {seen})"


# -- ServiceNow ------------------------------------------------------------------------------


def _incident(fake: FakeServiceNow, n: int, stamp: str) -> dict[str, Any]:
    row = {"sys_id": secrets.token_hex(16), "number": f"INC{n:07d}", "state": "2", "short_description": f"Disk {n}",
           "description": "", "impact": "2", "urgency": "2", "priority": "3", "category": "software", "assigned_to": "",
           "assignment_group": GROUPS[0]["sys_id"], "caller_id": "", "opened_at": stamp, "sys_created_on": stamp,
           "sys_updated_on": stamp, "sys_mod_count": "0", "parent_incident": "", "close_code": "", "close_notes": ""}
    fake.incidents.append(row)
    return row


@pytest.fixture
def servicenow(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> FakeServiceNow:
    monkeypatch.setenv("SERVICENOW_INSTANCE", "https://acme.service-now.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SERVICENOW_CLIENT_ID", raising=False)
    return FakeServiceNow()


def _servicenow(fake: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SERVICENOW_USER", fake.user)
    monkeypatch.setenv("SERVICENOW_PASSWORD", fake.password)
    return create_server(ServiceNowTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


async def test_servicenow_walk_survives_creates_updates_and_closes_between_pages(
        servicenow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = servicenow
    # the fake's own stamps (2026-11-23: new incidents, updates) come after the seeded ones
    server = _servicenow(fake, monkeypatch)
    # 12 incidents, four of them created in one second (bulk imports do that): the tie-break is sys_id
    stamps = [f"2026-11-01 09:00:{n:02d}" for n in range(8)] + ["2026-11-01 09:00:30"] * 4
    rows = [_incident(fake, n + 1, stamp) for n, stamp in enumerate(stamps)]
    throughout = {r["number"] for r in rows if r["number"] != "INC0000002"}

    async def between(page: int) -> None:
        await tool(server, "create_ticket", project="Service Desk", title=f"New disk {page}")  # lands first in every order
        updated = await tool(server, "update_ticket", id=rows[page + 3]["number"], title=f"Disk touched {page}")
        assert "code" not in updated, updated
        moved = await tool(server, "transition_ticket", id=rows[-1 - page]["number"], to="resolved")
        assert "code" not in moved, moved
        if page == 1:
            await tool(server, "delete_ticket", id="INC0000002", confirm=True)

    check(await walk(server, "search_tickets", between, limit=3), throughout)


async def test_servicenow_comment_walk_survives_comments_added_between_pages(
        servicenow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = servicenow
    server = _servicenow(fake, monkeypatch)
    row = _incident(fake, 1, "2026-11-01 09:00:00")
    for n in range(9):  # three entries share each second
        fake.journal.append({"sys_id": secrets.token_hex(16), "element_id": row["sys_id"], "element": "comments",
                             "value": f"c{n}", "sys_created_on": f"2026-11-01 10:00:0{n // 3}", "sys_created_by": "beth"})
    throughout = {j["sys_id"] for j in fake.journal}

    async def between(page: int) -> None:
        await tool(server, "add_comment", id="INC0000001", body=f"later {page}")

    seen = await walk(server, "list_comments", between, id="INC0000001", limit=2)
    check(seen, throughout)


# -- Zendesk ---------------------------------------------------------------------------------


@pytest.fixture
def zendesk(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[FakeZendesk, Any]:
    fake = FakeZendesk()
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))  # the idempotency file of a provider backend
    monkeypatch.setenv("ZENDESK_SUBDOMAIN", "acme")
    monkeypatch.setenv("ZENDESK_EMAIL", fake.email)
    monkeypatch.setenv("ZENDESK_API_TOKEN", fake.token)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    monkeypatch.delenv("ZENDESK_BASE_URL", raising=False)
    return fake, create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


async def _zendesk_walk(fake: FakeZendesk, server: Any, **args: Any) -> None:
    for n in range(10):
        made = await tool(server, "create_ticket", project="Support", title=f"Printer {n}", description="jammed")
        assert "code" not in made, made
    throughout = {str(t["id"]) for t in fake.tickets}

    async def between(page: int) -> None:
        await tool(server, "create_ticket", project="Support", title=f"Printer new {page}", description="jammed")
        touched = await tool(server, "update_ticket", id=str(page + 4), title=f"Printer touched {page}")
        assert "code" not in touched, touched
        solved = await tool(server, "transition_ticket", id=str(10 - page), to="resolved")
        assert "code" not in solved, solved

    check(await walk(server, "search_tickets", between, limit=3, **args), throughout)


async def test_zendesk_list_walk_survives_creates_and_updates_between_pages(zendesk: tuple[FakeZendesk, Any]) -> None:
    await _zendesk_walk(*zendesk)


async def test_zendesk_search_walk_survives_creates_and_updates_between_pages(zendesk: tuple[FakeZendesk, Any]) -> None:
    await _zendesk_walk(*zendesk, text="Printer")


# -- GitHub search (the same class: `/search/issues` paged by page number over `sort=updated`) ----------------


async def test_github_search_walk_survives_creates_and_updates_between_pages(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "https://api.github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    for n in range(10):
        fake.add(f"Login bug {n}")
    for issue in fake.issues[3:7]:  # four made in one second (an import): the tie-break is the number
        issue["created_at"] = fake.issues[3]["created_at"]
    throughout = {str(i["number"]) for i in fake.issues}

    async def between(page: int) -> None:
        await tool(server, "create_ticket", project=fake.repo, title=f"Login bug new {page}")
        touched = await tool(server, "update_ticket", id=str(page + 2), title=f"Login bug touched {page}")
        assert "code" not in touched, touched
        closed = await tool(server, "transition_ticket", id=str(9 - page), to="resolved")
        assert "code" not in closed, closed

    check(await walk(server, "search_tickets", between, text="Login", limit=3), throughout)


# -- Jira (`ORDER BY updated DESC` moved an updated issue across the page boundary) ----------------------------


async def test_jira_walk_survives_creates_and_updates_between_pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake = FakeJira()
    for name, value in (("JIRA_BASE_URL", "https://acme.atlassian.net"), ("JIRA_EMAIL", fake.email), ("JIRA_API_TOKEN", fake.token),
                        ("MCP_HUB_DATA_DIR", str(tmp_path))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JIRA_OAUTH_TOKEN", raising=False)
    server = create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))
    for n in range(10):
        assert "id" in await tool(server, "create_ticket", project="OPS", title=f"Crash {n}")
    for key in ("OPS-4", "OPS-5", "OPS-6"):  # created in one second: the tie-break is the key
        fake.issues[key]["fields"]["created"] = fake.issues["OPS-4"]["fields"]["created"]
    throughout = set(fake.issues)

    async def between(page: int) -> None:
        await tool(server, "create_ticket", project="OPS", title=f"Crash new {page}")
        touched = await tool(server, "update_ticket", id=f"OPS-{page + 2}", title=f"Crash touched {page}")
        assert "code" not in touched, touched
        moved = await tool(server, "transition_ticket", id=f"OPS-{9 - page}", to="resolved")
        assert "code" not in moved, moved

    check(await walk(server, "search_tickets", between, project="OPS", limit=3), throughout)
