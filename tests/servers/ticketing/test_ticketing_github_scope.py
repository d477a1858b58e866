"""GitHub reaches only the repositories it was configured for (fixer ticketing28 #1): `GITHUB_REPO` plus the
optional `GITHUB_REPOS`. No id, project, other id, native search or cursor picks another repository."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from servers.kit.cursor import encode_cursor
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub
from tests.servers.ticketing.test_ticketing_github import tool

pytestmark = pytest.mark.anyio


def _server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, repo: str = "acme/app", repos: str | None = None) -> tuple[FakeGitHub, Any]:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", repo)
    if repos is None:
        monkeypatch.delenv("GITHUB_REPOS", raising=False)
    else:
        monkeypatch.setenv("GITHUB_REPOS", repos)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


def _outside(fake: FakeGitHub) -> list[str]:
    """Requests that reached a repository other than the fake's own."""
    return [r["path"] for r in fake.requests if r["path"].startswith("/repos/") and not r["path"].startswith("/repos/acme/app/")]


def _refused(answer: dict[str, Any]) -> bool:
    return (answer.get("code") == "invalid_argument" and "acme/app" in answer.get("message", "")
            and "GITHUB_REPOS" in answer.get("message", ""))


async def test_writes_and_reads_by_id_stay_in_the_configured_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _server(monkeypatch, tmp_path)
    fake.add("Ours")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_ticket", {"id": "other/x#1"}),
        ("update_ticket", {"id": "other/x#1", "title": "pwned"}),
        ("transition_ticket", {"id": "Other/X#1", "to": "closed"}),
        ("add_comment", {"id": "other/x#1", "body": "hi"}),
        ("list_comments", {"id": "other/x#1"}),
        ("link_tickets", {"id": "other/x#1", "other_id": "1"}),
        ("link_tickets", {"id": "1", "other_id": "other/x#1"}),
        ("get_metadata", {"ticket_id": "other/x#1"}),
        ("get_metadata", {"project": "other/x"}),
        ("create_ticket", {"project": "other/x", "title": "elsewhere"}),
        ("search_tickets", {"project": "other/x"}),
        ("search_tickets", {"project": "other/x", "text": "Ours"}),
    ]
    for name, args in calls:
        answer = await tool(server, name, **args)
        assert _refused(answer), (name, args, answer)
        assert answer["details"]["allowed_repositories"] == ["acme/app"]
    assert not _outside(fake), _outside(fake)
    assert not [r for r in fake.requests if r["method"] != "GET"], "nothing was written anywhere"
    # The configured repository still answers by every spelling of an id.
    for ident in ("1", "#1", "acme/app#1", "ACME/App#1"):
        assert (await tool(server, "get_ticket", id=ident))["title"] == "Ours", ident


async def test_native_search_is_confined(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _server(monkeypatch, tmp_path)
    fake.add("Crash on save")
    for query in ("repo:other/x is:issue", "org:acme is:issue", "ORG:acme crash", "user:octo crash", "owner:acme crash",
                  "-org:acme crash", 'repo:"other/x" crash', "repo:acme/app repo:other/x crash", "(repo:other/x) crash",
                  "crash Repo:other/x", "repo:acme/app,other/x crash"):
        answer = await tool(server, "search_tickets", native_query=query)
        assert answer.get("code") == "invalid_argument" and "GITHUB_REPOS" in answer["message"], (query, answer)
    assert not [r for r in fake.requests if r["path"] == "/search/issues"], "a refused query is never sent"
    found = await tool(server, "search_tickets", native_query="crash is:issue")
    assert [t["id"] for t in found["tickets"]] == ["1"]
    assert fake.requests[-1]["params"]["q"] == "repo:acme/app (crash is:issue)"
    await tool(server, "search_tickets", native_query="label:bug OR label:ui")
    assert fake.requests[-1]["params"]["q"] == "repo:acme/app (label:bug OR label:ui)", "an OR never escapes the scope"
    own = await tool(server, "search_tickets", native_query="repo:ACME/app crash")
    assert [t["id"] for t in own["tickets"]] == ["1"] and fake.requests[-1]["params"]["q"] == "repo:acme/app (crash)"


async def test_results_from_outside_the_list_are_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Whatever GitHub makes of a query, an issue of a repository outside the list never becomes an id."""
    foreign = {"id": 99, "number": 3, "title": "Other", "body": "", "state": "open", "state_reason": None, "labels": [],
               "user": {"login": "u"}, "assignee": None, "assignees": [], "created_at": "2026-12-01T10:00:00Z",
               "updated_at": "2026-12-01T10:00:00Z", "repository_url": "http://github.test/repos/other/x"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"total_count": 1, "incomplete_results": False, "items": [foreign]})

    monkeypatch.setenv("GITHUB_REPO", "acme/app")
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    server = create_server(GitHubTicketing.from_env(transport=httpx.MockTransport(handler)))
    assert (await tool(server, "search_tickets", native_query="is:issue bug"))["tickets"] == []


async def test_github_repos_widens_the_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """GITHUB_REPO acme/lib (the default) and GITHUB_REPOS acme/app (the fake's): ids and searches reach both."""
    fake, server = _server(monkeypatch, tmp_path, repo="acme/lib", repos=" acme/app , ")
    fake.add("Crash in app")
    got = await tool(server, "get_ticket", id="acme/app#1")
    assert (got["id"], got["project"]) == ("acme/app#1", "acme/app")
    assert (await tool(server, "add_comment", id="acme/app#1", body="seen"))["body"] == "seen"
    assert [c["body"] for c in (await tool(server, "list_comments", id="acme/app#1"))["comments"]] == ["seen"]
    found = await tool(server, "search_tickets", native_query="crash")
    assert fake.requests[-1]["params"]["q"] == "repo:acme/lib repo:acme/app (crash)"
    assert [t["id"] for t in found["tickets"]] == ["acme/app#1"]
    assert (await tool(server, "search_tickets", project="app", text="crash"))["tickets"][0]["id"] == "acme/app#1"
    refused = await tool(server, "get_ticket", id="acme/other#1")
    assert refused["code"] == "invalid_argument" and refused["details"]["allowed_repositories"] == ["acme/lib", "acme/app"]


async def test_a_crafted_cursor_cannot_pick_another_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    fake, server = _server(monkeypatch, tmp_path)
    fake.add("Ours")
    crafted = encode_cursor({"next": "http://github.test/repos/other/x/issues?page=2"})
    assert (await tool(server, "search_tickets", cursor=crafted))["code"] == "invalid_argument"
    crafted = encode_cursor({"next": "http://github.test/repos/other/x/issues/1/comments?page=2"})
    assert (await tool(server, "list_comments", id="1", cursor=crafted))["code"] == "invalid_argument"
    assert not _outside(fake), _outside(fake)


def test_a_bad_allow_list_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REPO", "acme/app")
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("GITHUB_REPOS", "acme/lib,not a repo")
    with pytest.raises(ValueError, match="GITHUB_REPOS"):
        GitHubTicketing.from_env()


async def test_search_values_cannot_smuggle_a_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The search built from text, labels, type and assignee is checked too: GitHub would OR a smuggled `repo:`."""
    fake, server = _server(monkeypatch, tmp_path)
    fake.add("Crash")
    for args in ({"text": "crash repo:other/x"}, {"text": "crash ORG:other"}, {"text": "crash", "labels": ['bug" repo:other/x "']},
                 {"text": "crash", "type": 'bug" user:other "'}, {"text": "crash", "assignee": "me repo:other/x"}):
        answer = await tool(server, "search_tickets", **args)
        assert answer.get("code") == "invalid_argument", (args, answer)  # a quote in a label: its own refusal (s28 #6)
        assert any(w in answer["message"] for w in ("GITHUB_REPOS", "cannot quote", "not a GitHub login")), (args, answer)
    assert not [r for r in fake.requests if r["path"] == "/search/issues"], "nothing was sent"
    assert [t["id"] for t in (await tool(server, "search_tickets", text="crash repo:acme/app"))["tickets"]] == ["1"]


async def test_a_search_over_many_repositories_stays_within_githubs_query_length(monkeypatch: pytest.MonkeyPatch,
                                                                                 tmp_path: Any) -> None:
    """Twelve allowed repositories with long names: their `repo:` qualifiers alone pass GitHub's 256 characters, so
    every search that names none failed with GitHub's 422. Now they are spread over several searches, merged
    newest first, and walked page by page as one search."""
    others = [f"acme-corporation/service-number-{n:02d}-backend" for n in range(12)]
    fake, server = _server(monkeypatch, tmp_path, repos=",".join(others))
    for n in range(7):
        fake.add(f"crash {n}")
    shown: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await tool(server, "search_tickets", native_query="crash", limit=3, **({"cursor": cursor} if cursor else {}))
        assert "code" not in page, page
        shown += [t["title"] for t in page["tickets"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert shown == [f"crash {n}" for n in reversed(range(7))]
    searches = [r for r in fake.requests if r["path"] == "/search/issues"]
    assert all(len(r["params"]["q"]) <= 256 for r in searches)
    assert len({q for r in searches for q in r["params"]["q"].split() if q.startswith("repo:")}) == 13  # every repository searched
    text = await tool(server, "search_tickets", text="crash", project="acme/app")
    assert [t["title"] for t in text["tickets"]][:1] == ["crash 6"], text
    long = await tool(server, "search_tickets", native_query="crash " + "x" * 240)
    assert long["code"] == "invalid_argument" and "256" in long["message"], long
