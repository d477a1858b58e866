"""The GitHub Issues connector against a local fake of the REST API."""

from __future__ import annotations

import re

import time
from typing import Any

import httpx
import pytest
from mcp import Client

from servers.kit.cursor import encode_cursor
from servers.ticketing.providers.github import GitHubTicketing
from servers.ticketing.server import create_server
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.anyio


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> tuple[FakeGitHub, Any]:
    fake = FakeGitHub()
    monkeypatch.setenv("GITHUB_REPO", fake.repo)
    monkeypatch.setenv("GITHUB_TOKEN", fake.token)
    monkeypatch.setenv("GITHUB_API_URL", "http://github.test")
    monkeypatch.setenv("MCP_HUB_DATA_DIR", str(tmp_path))
    return fake, create_server(GitHubTicketing.from_env(transport=httpx.ASGITransport(app=fake.app())))


async def tool(server: Any, name: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        return (await client.call_tool(name, args)).structured_content


async def test_github_lists_search_and_writes(github: tuple[FakeGitHub, Any]) -> None:
    fake, server = github
    for n in range(5):
        fake.add(f"Issue {n}")
    fake.add("A pull request", pr=True)
    page = await tool(server, "search_tickets", limit=4)
    sent = fake.requests[-1]
    assert sent["headers"]["x-github-api-version"] == "2022-11-28" and sent["headers"]["accept"] == "application/vnd.github+json"
    assert sent["params"] == {"state": "all", "sort": "created", "direction": "desc", "per_page": "4", "page": "1"}
    # The pull request is the newest row of page 1: it is dropped, so that page holds three issues.
    assert [t["title"] for t in page["tickets"]] == ["Issue 4", "Issue 3", "Issue 2"]
    rest = await tool(server, "search_tickets", limit=4, cursor=page["next_cursor"])
    assert [t["title"] for t in rest["tickets"]] == ["Issue 1", "Issue 0"] and rest["next_cursor"] is None
    assert fake.requests[-1]["params"]["page"] == "2"
    evil = await tool(server, "search_tickets", cursor=encode_cursor({"next": "https://evil.example/steal"}))
    assert evil["code"] == "invalid_argument" and not any("evil" in r["path"] for r in fake.requests)

    fake.search_total = 4321
    found = await tool(server, "search_tickets", text="Issue", limit=2)
    sent = fake.requests[-1]["params"]
    assert sent["q"] == "repo:acme/app is:issue (Issue)" and sent["sort"] == "created" and sent["order"] == "desc"
    assert found["total"] == 4321 and found["truncated"] is False and found["next_cursor"]  # keyed: no 1,000 cap
    native = await tool(server, "search_tickets", native_query="repo:acme/app is:issue author:octo")
    assert fake.requests[-1]["params"]["q"] == "repo:acme/app (is:issue author:octo)" and "tickets" in native

    created = await tool(server, "create_ticket", project="acme/app", title="Crash on save", description="Steps:\n1. save",
                         priority="high", labels=["bug"], assignee="octocat", idempotency_key="gh-1")
    again = await tool(server, "create_ticket", project="acme/app", title="Crash on save", description="Steps:\n1. save",
                       priority="high", labels=["bug"], assignee="octocat", idempotency_key="gh-1")
    assert created["id"] == again["id"] == "7" and created["priority"] == "high" and created["labels"] == ["bug"]
    posts = [r for r in fake.requests if r["method"] == "POST" and r["path"] == "/repos/acme/app/issues"]
    sent = posts[0]["json"]  # the body ends with the create's marker, an HTML comment (not shown in the description)
    assert re.fullmatch(r"Steps:\n1\. save\n\n<!-- mcp-hub create mcph-[0-9a-f]{24} -->", sent.pop("body"))
    assert len(posts) == 1 and sent == {"title": "Crash on save", "labels": ["bug", "priority: high"], "assignees": ["octocat"]}
    assert created["description"] == "Steps:\n1. save"

    updated = await tool(server, "update_ticket", id="7", priority="low", expected_version=created["version"])
    assert updated["priority"] == "low" and updated["labels"] == ["bug"]
    assert (await tool(server, "update_ticket", id="7", title="x", expected_version=created["version"]))["code"] == "conflict"
    resolved = await tool(server, "transition_ticket", id="#7", to="resolved")
    assert resolved["status"] == "resolved" and fake.requests[-1]["json"] == {"state": "closed", "state_reason": "completed"}
    refused = await tool(server, "transition_ticket", id="7", to="in_progress")
    assert refused["code"] == "conflict" and refused["details"]["allowed"] == ["open"]
    assert (await tool(server, "transition_ticket", id="7", to="open"))["status"] == "open"

    comment = await tool(server, "add_comment", id="7", body="Fixed in main")
    assert comment["public"] is True
    assert (await tool(server, "add_comment", id="7", body="secret", public=False))["code"] == "invalid_argument"
    link = await tool(server, "link_tickets", id="7", other_id="1", type="blocks")
    assert link["ticket"] == "1" and fake.comments[7][-1]["body"] == "Blocks #1"
    listed = await tool(server, "list_comments", id="7", limit=1)
    assert [c["body"] for c in listed["comments"]] == ["Fixed in main"] and listed["next_cursor"]
    assert [c["body"] for c in (await tool(server, "list_comments", id="7", cursor=listed["next_cursor"]))["comments"]] == ["Blocks #1"]
    full = await tool(server, "get_ticket", id="acme/app#7", include=["comments", "transitions"])
    assert [c["body"] for c in full["comments"]] == ["Fixed in main", "Blocks #1"]
    assert [t["to_status"] for t in full["transitions"]] == ["resolved", "closed"]
    assert (await tool(server, "get_ticket", id="6"))["code"] == "not_found"  # a pull request
    assert (await tool(server, "get_ticket", id="abc"))["code"] == "invalid_argument"
    deleted = await tool(server, "delete_ticket", id="7", confirm=True)
    assert deleted["code"] == "invalid_argument" and "close it" in deleted["message"]
    assert (await tool(server, "find_users", query="octo"))["users"] == [{"id": "octocat", "name": "octocat", "email": None}]
    meta = await tool(server, "get_metadata", ticket_id="7")
    assert meta["types"] == ["bug", "enhancement"] and meta["transitions"][0]["to_status"] == "resolved"


async def test_github_rate_limits(github: tuple[FakeGitHub, Any]) -> None:
    fake, server = github
    fake.add("one")
    reset = int(time.time()) + 1
    fake.fail_next.append((403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset), "X-RateLimit-Limit": "5000"},
                           '{"message": "API rate limit exceeded"}'))
    limited = await tool(server, "get_ticket", id="1")  # at once, with the wait until the reset: the hub retries
    assert limited["code"] == "rate_limited" and limited["retry_after_s"] <= 1 and "rate limit exceeded" in limited["message"]
    ok = await tool(server, "get_ticket", id="1")
    assert ok["title"] == "one" and len([r for r in fake.requests if r["path"].endswith("/issues/1")]) == 2
    fake.fail_next.append((403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)}, "{}"))
    limited = await tool(server, "get_ticket", id="1")
    assert limited["code"] == "rate_limited" and 3500 < limited["retry_after_s"] <= 3600
    fake.fail_next.append((403, {"X-RateLimit-Remaining": "4999"}, '{"message": "Resource not accessible by integration"}'))
    forbidden = await tool(server, "get_ticket", id="1")
    assert forbidden["code"] == "forbidden" and "not accessible" in forbidden["message"]
    fake.fail_next.append((401, {}, '{"message": "Bad credentials"}'))
    denied = await tool(server, "get_ticket", id="1")
    assert denied["code"] == "unauthorized" and fake.token not in str(denied)


SECONDARY = '{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}'


async def test_github_secondary_rate_limits_are_rate_limited_not_forbidden(github: tuple[FakeGitHub, Any]) -> None:
    """GitHub's secondary limits (concurrent requests, writes a minute) answer 403 while the primary count has requests
    left: with `Retry-After`, or only a message. They were `forbidden` — "get permissions" to a caller that has them,
    and not retried; they are a wait, as GitHub documents (at least a minute when no header says how long)."""
    fake, server = github
    fake.add("one")
    fake.fail_next.append((403, {"X-RateLimit-Remaining": "4321", "Retry-After": "7"}, SECONDARY))
    limited = await tool(server, "get_ticket", id="1")
    assert limited["code"] == "rate_limited" and limited["retry_after_s"] == 7 and "secondary rate limit" in limited["message"]
    fake.fail_next.append((403, {"X-RateLimit-Remaining": "4321"}, SECONDARY))
    limited = await tool(server, "get_ticket", id="1")
    assert limited["code"] == "rate_limited" and limited["retry_after_s"] == 60
    fake.fail_next.append((403, {}, '{"message": "You have triggered an abuse detection mechanism. Please wait."}'))
    assert (await tool(server, "get_ticket", id="1"))["code"] == "rate_limited"
    # a write GitHub refused this way made nothing, and the same call goes through once the wait is over
    fake.fail_next.append((403, {"Retry-After": "1"}, '{"message": "You have exceeded a secondary rate limit and have been '
                           'temporarily blocked from content creation. Please retry your request again later."}'))
    refused = await tool(server, "create_ticket", project="acme/app", title="Blocked once")
    assert refused["code"] == "rate_limited" and refused["retry_after_s"] == 1 and len(fake.issues) == 1
    made = await tool(server, "create_ticket", project="acme/app", title="Blocked once")
    assert made["title"] == "Blocked once" and len(fake.issues) == 2
    # a 403 that is a refusal stays one
    fake.fail_next.append((403, {"X-RateLimit-Remaining": "4321"}, '{"message": "Must have admin rights to Repository."}'))
    assert (await tool(server, "get_ticket", id="1"))["code"] == "forbidden"


async def test_github_incomplete_search_says_truncated(github: tuple[FakeGitHub, Any]) -> None:
    """A search GitHub ends at its time limit answers `incomplete_results: true` with what it had found. The page
    passed as whole (`truncated` false), so issues went missing in silence; now the page, and the walk after it,
    say `truncated`, and a complete search does not."""
    fake, server = github
    for n in range(6):
        fake.add(f"Printer jam {n}")
    whole = await tool(server, "search_tickets", text="Printer", limit=10)
    assert len(whole["tickets"]) == 6 and whole["truncated"] is False
    fake.incomplete_search = 1
    part = await tool(server, "search_tickets", text="Printer", limit=2)
    assert part["truncated"] is True and len(part["tickets"]) == 2 and part["next_cursor"]
    rest = await tool(server, "search_tickets", text="Printer", limit=10, cursor=part["next_cursor"])
    assert rest["truncated"] is True  # the walk passed over what the timed-out search left out
    again = await tool(server, "search_tickets", text="Printer", limit=10)
    assert len(again["tickets"]) == 6 and again["truncated"] is False
