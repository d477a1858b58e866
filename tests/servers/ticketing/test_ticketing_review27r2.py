"""Outside review evtick27, ticketing defects #3 (crafted cursors reaching provider queries), #8 (GitHub search
results labelled with the configured repository), #9 (Jira search with no filter sent unbounded JQL) and #4
(a GitHub search walk ending silently at a crowded second)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.providers.github_search import search_page
from servers.ticketing.providers.jira import JiraTicketing
from servers.ticketing.providers.zendesk import ZendeskTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import FakeServiceNow
from tests.fakes.zendesk import FakeZendesk
from tests.servers.ticketing.test_ticketing_servicenow import tool
from tests.servers.ticketing.test_ticketing_stable_walks import _servicenow, servicenow  # noqa: F401 — a fixture

pytestmark = pytest.mark.anyio


def crafted(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def refused(page: dict[str, Any]) -> bool:
    return page.get("code") == "invalid_argument" and "next_cursor" in page.get("message", "")


# -- #3: ServiceNow (and every provider's) cursor values never reach a query unchecked ------------------------

async def test_servicenow_forged_cursor_cannot_add_query_groups(servicenow: FakeServiceNow,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server = _servicenow(servicenow, monkeypatch)
    a = await tool(server, "create_ticket", project="Service Desk", title="Mine")
    b = await tool(server, "create_ticket", project="Service Desk", title="Someone else's")
    await tool(server, "add_comment", id=a["id"], body="a public comment on A", public=True)
    await tool(server, "add_comment", id=b["id"], body="SECRET work note on B", public=False)
    injected = crafted({"after": ["1970-01-01 00:00:00^NQelement=work_notes", ""], "skip": 0})
    sent_before = len(servicenow.requests)
    page = await tool(server, "list_comments", id=a["id"], cursor=injected)
    assert refused(page), page
    search = await tool(server, "search_tickets", status=["open"], cursor=injected)
    assert refused(search), search
    assert not any("NQelement" in str(r.get("params", {})) for r in servicenow.requests[sent_before:])
    for bad in ({"after": ["2026-11-23 10:00:01", "x" * 31 + "^"]}, {"after": ["2026-11-23 10:00:01"]},
                {"after": "2026-11-23 10:00:01"}, {"after": [1, 2]}, {"total": "x"}, {"skip": "1"}, {"total": True}):
        assert refused(await tool(server, "search_tickets", cursor=crafted(bad))), bad
    # The cursors it makes itself still walk.
    first = await tool(server, "list_comments", id=a["id"], limit=1)
    assert first["comments"] and "code" not in first


async def test_github_forged_search_cursor_cannot_add_qualifiers(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _github(monkeypatch, tmp_path)
    fake.add("Crash one")
    for bad in ({"before": "2026-11-23T10:00:01Z repo:acme/secret", "seen": []}, {"before": 5, "seen": []},
                {"before": "2026-11-23T10:00:01Z", "seen": ["1"]}, {"before": "2026-11-23T10:00:01Z", "total": "x"},
                {"before": "2026-11-23T10:00:01Z", "below": "yes"}):
        assert refused(await tool(server, "search_tickets", text="Crash", cursor=crafted(bad))), bad
    for bad in ({"before": "3", "page": 1}, {"per_page": "x"}, {"page": -1}):
        assert refused(await tool(server, "search_tickets", cursor=crafted(bad))), bad
    assert not any("secret" in str(r.get("params", {})) for r in fake.requests)


async def test_jira_and_zendesk_crafted_cursor_types_are_invalid_argument(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Any) -> None:
    fake, jira = _jira(monkeypatch, tmp_path)
    await tool(jira, "create_ticket", project="OPS", title="Crash")
    for bad in ({"next_page_token": {"x": 1}}, {"next_page_token": "1", "after": 7},
                {"next_page_token": "1", "after": ["a", "b", "c"]}):
        assert refused(await tool(jira, "search_tickets", project="OPS", cursor=crafted(bad))), bad
    zfake = FakeZendesk()
    for name, value in (("ZENDESK_SUBDOMAIN", "acme"), ("ZENDESK_EMAIL", zfake.email), ("ZENDESK_API_TOKEN", zfake.token)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ZENDESK_OAUTH_TOKEN", raising=False)
    monkeypatch.delenv("ZENDESK_BASE_URL", raising=False)
    zendesk = create_server(ZendeskTicketing.from_env(transport=httpx.ASGITransport(app=zfake.app())))
    assert refused(await tool(zendesk, "search_tickets", cursor=crafted({"after": {"a": 1}})))
    assert refused(await tool(zendesk, "search_tickets", text="x", cursor=crafted({"after": ["a"]})))


# -- #8: GitHub search results carry the repository they come from ------------------------------------------

def _github(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, transport: Any = None) -> tuple[FakeGitHub, Any]:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(GitHubTicketing.from_env(transport=transport or httpx.ASGITransport(app=fake.app())))


OTHER = {"id": 99, "number": 3, "title": "Other repo's issue", "body": "", "state": "open", "state_reason": None,
         "labels": [], "user": {"login": "u"}, "assignee": None, "assignees": [], "created_at": "2026-12-01T10:00:00Z",
         "updated_at": "2026-12-01T10:00:00Z", "html_url": "https://github.com/acme/other/issues/3",
         "repository_url": "http://github.test/repos/acme/other"}


async def test_github_search_results_are_labelled_with_their_own_repository(monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Any) -> None:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/search/issues":
            queries.append(request.url.params["q"])
            return httpx.Response(200, json={"total_count": 1, "incomplete_results": False, "items": [OTHER]})
        return httpx.Response(404, json={"message": "Not Found"})

    monkeypatch.setenv("GITHUB_REPOS", "acme/other")  # fixer ticketing28 #1: only allowed repositories are searched
    _, server = _github(monkeypatch, tmp_path, httpx.MockTransport(handler))
    page = await tool(server, "search_tickets", native_query="repo:acme/other is:issue bug")
    ticket = page["tickets"][0]
    assert (ticket["id"], ticket["project"], ticket["key"]) == ("acme/other#3", "acme/other", "acme/other#3")
    # A native query naming no scope of its own stays in the allowed repositories; org: is refused, never sent.
    await tool(server, "search_tickets", native_query="is:issue bug")
    assert (await tool(server, "search_tickets", native_query="org:acme is:issue bug"))["code"] == "invalid_argument"
    assert queries == ["repo:acme/other (is:issue bug)", "repo:acme/app repo:acme/other (is:issue bug)"]


async def test_github_search_results_of_the_configured_repo_keep_plain_numbers(monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Any) -> None:
    fake, server = _github(monkeypatch, tmp_path)
    fake.add("Crash here")
    page = await tool(server, "search_tickets", text="Crash")
    assert [(t["id"], t["project"]) for t in page["tickets"]] == [("1", "acme/app")]


# -- #9: Jira search with no filter sends bounded JQL -----------------------------------------------------

def _jira(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[FakeJira, Any]:
    fake = FakeJira()
    for name, value in (("JIRA_BASE_URL", "https://acme.atlassian.net"), ("JIRA_EMAIL", fake.email),
                        ("JIRA_API_TOKEN", fake.token), ("MCP_HUB_DATA_DIR", str(tmp_path))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JIRA_OAUTH_TOKEN", raising=False)
    return fake, create_server(JiraTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


async def test_jira_unfiltered_search_is_bounded_and_walks(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _jira(monkeypatch, tmp_path)
    for n in range(5):
        await tool(server, "create_ticket", project="OPS", title=f"Crash {n}")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await tool(server, "search_tickets", limit=2, **({"cursor": cursor} if cursor else {}))
        assert "code" not in page, page
        seen += [t["id"] for t in page["tickets"]]
        if not (cursor := page.get("next_cursor")):
            break
    assert sorted(seen) == sorted(fake.issues)
    jql = [r["params"]["jql"] for r in fake.requests if r["path"].endswith("/search/jql")]
    assert jql and all(q.startswith("created <= now() ORDER BY") for q in jql), jql


async def test_fake_jira_refuses_unbounded_jql_as_jira_cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _, server = _jira(monkeypatch, tmp_path)
    page = await tool(server, "search_tickets", native_query="ORDER BY created DESC")
    assert page["code"] != "internal" and "Unbounded JQL" in page["message"], page


# -- #4: a GitHub search walk past a second holding more issues than one page ------------------------------

def test_search_page_steps_below_a_crowded_second_and_says_so() -> None:
    crowd, old = "2026-12-01T10:00:00Z", "2026-11-01T10:00:00Z"
    issues = [{"id": 71000 - i, "number": 1000 - i, "created_at": crowd} for i in range(120)] + [
        {"id": 70010 - i, "number": 10 - i, "created_at": old} for i in range(10)]

    def github(before: str | None, below: bool, per_page: int) -> list[dict[str, Any]]:
        rows = [r for r in issues if before is None or (r["created_at"] < before if below else r["created_at"] <= before)]
        return rows[:min(per_page, 100)]

    shown: list[int] = []
    passed_over = False
    state: dict[str, Any] | None = {}
    for _ in range(20):
        assert state is not None
        before, seen, below = state.get("before"), set(state.get("seen", [])), state.get("below", False)
        taken, state, passed = search_page(github(before, below, 50 + len(seen)), len(issues), before, seen, 50, below)
        shown += [r["number"] for r in taken]
        passed_over = passed_over or passed
        if state is None:
            break
    assert state is None and len(shown) == len(set(shown))
    assert set(range(1, 11)) <= set(shown), "the issues older than the crowded second are listed"
    assert passed_over, "the walk says it passed over issues of the crowded second"


def test_search_page_tells_apart_issues_of_two_repositories_with_one_number() -> None:
    """A walk over several repositories: `acme/app#3` and `acme/web#3` created in one second, a page ending
    between them — the second was skipped as already shown (the walk remembered numbers)."""
    second = "2026-12-01T10:00:00Z"
    issues = [{"id": 500 + n + (100 if repo == "web" else 0), "number": n, "created_at": second,
               "repository_url": f"https://api.github.com/repos/acme/{repo}"} for n in (3, 2, 1) for repo in ("app", "web")]
    shown: list[tuple[str, int]] = []
    state: dict[str, Any] | None = {}
    for _ in range(10):
        assert state is not None
        before, seen = state.get("before"), set(state.get("seen", []))
        rows = [r for r in issues if before is None or r["created_at"] <= before][: 1 + len(seen)]
        taken, state, _ = search_page(rows, len(issues), before, seen, 1)
        shown += [(r["repository_url"].rsplit("/", 1)[1], r["number"]) for r in taken]
        if state is None:
            break
    assert sorted(shown) == sorted((repo, n) for n in (3, 2, 1) for repo in ("app", "web")), shown


async def test_github_search_walk_reports_truncated_at_a_crowded_second(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Any) -> None:
    fake, server = _github(monkeypatch, tmp_path)
    for n in range(5):
        fake.add(f"Crash old {n}")
    for n in range(105):
        fake.add(f"Crash bulk {n}")["created_at"] = "2026-11-30T10:00:00Z"
    shown: list[str] = []
    truncated = False
    cursor = None
    for _ in range(20):
        page = await tool(server, "search_tickets", text="Crash", limit=50, **({"cursor": cursor} if cursor else {}))
        assert "code" not in page, page
        shown += [t["id"] for t in page["tickets"]]
        truncated = truncated or page["truncated"]
        if not (cursor := page.get("next_cursor")):
            break
    assert {"1", "2", "3", "4", "5"} <= set(shown) and len(shown) == len(set(shown))
    assert truncated
