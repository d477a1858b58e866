"""A GitHub `/search/issues` fake holding several repositories (the shipped `github.FakeGitHub` holds one), for
searches spread over several queries (`github_search.repo_chunks`; outside review gh30).

As GitHub: `repo:` qualifiers are ORed, the rest ANDed; `created:<=`/`created:<` instants, `is:open`/`is:closed`,
`label:"x"`, bare words match the title; sort=created&order=desc; GitHub has no order inside one second, so
`tie` picks one (default: id ascending, the opposite of the connector's merge); a query over 256 characters is a
422; `limit_per_window` answers 403 + X-RateLimit-Remaining: 0 past that many searches (GitHub's 30 a minute)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "ghp_reviewgh30secrettoken0123456789"
_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class MultiGitHub:
    issues: list[dict[str, Any]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    fail: dict[int, tuple[int, dict[str, str], str]] = field(default_factory=dict)
    """search index (0-based, counted over all searches) -> (status, headers, body) answered instead."""
    limit_per_window: int | None = None
    tie: Callable[[dict[str, Any]], Any] = lambda i: i["id"]
    next_id: int = 100000
    counters: dict[str, int] = field(default_factory=dict)
    length: Callable[[str], int] = len
    """How the fake counts a query against 256 (GitHub's own count is undocumented)."""

    def add(self, repo: str, title: str, created: str, *, state: str = "open", labels: list[str] | None = None,
            reason: str | None = None) -> dict[str, Any]:
        self.next_id += 7
        self.counters[repo] = self.counters.get(repo, 0) + 1
        n = self.counters[repo]
        issue = {"id": self.next_id, "number": n, "title": title, "body": "", "state": state, "state_reason": reason,
                 "labels": [{"name": x} for x in labels or []], "assignee": None, "assignees": [],
                 "user": {"login": "octo"}, "created_at": created, "updated_at": created,
                 "html_url": f"https://github.com/{repo}/issues/{n}", "repo": repo}
        self.issues.append(issue)
        return issue

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/search/issues", self.search, methods=["GET"])])

    async def search(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"message": "Bad credentials"}, 401)
        q = request.query_params["q"]
        index = len(self.queries)
        self.queries.append(q)
        if index in self.fail:
            status, headers, body = self.fail[index]
            return Response(body, status, headers=headers, media_type="application/json")
        if self.limit_per_window is not None and index >= self.limit_per_window:
            return JSONResponse({"message": "API rate limit exceeded for user ID 1."}, 403, headers={
                "x-ratelimit-limit": "30", "x-ratelimit-remaining": "0", "x-ratelimit-resource": "search",
                "x-ratelimit-reset": "9999999999", "retry-after": "60"})
        if self.length(q) > 256:
            return JSONResponse({"message": "Validation Failed", "errors": [
                {"message": "The search is longer than 256 characters.", "resource": "Search", "field": "q",
                 "code": "invalid"}]}, 422)
        tokens = [t.strip("()") for t in _TOKEN.findall(q)]
        tokens = [t for t in tokens if t]
        repos = [t.split(":", 1)[1].lower() for t in tokens if t.lower().startswith("repo:")]
        rows = [i for i in self.issues if not repos or i["repo"].lower() in repos]
        notrepos = [t.split(":", 1)[1].lower() for t in tokens if t.lower().startswith("-repo:")]
        rows = [i for i in rows if i["repo"].lower() not in notrepos]
        for t in tokens:
            low = t.lower()
            if low.startswith(("repo:", "-repo:")) or t in ("OR", "AND", "NOT"):
                continue
            if low in ("is:open", "is:closed"):
                rows = [i for i in rows if i["state"] == low[3:]]
            elif low == "is:issue":
                continue
            elif low.startswith("reason:"):
                rows = [i for i in rows if i["state"] == "closed" and i["state_reason"] == t[7:]]
            elif low.startswith("created:<="):
                rows = [i for i in rows if _instant(i["created_at"]) <= _instant(t[10:])]
            elif low.startswith("created:<"):
                rows = [i for i in rows if _instant(i["created_at"]) < _instant(t[9:])]
            elif low.startswith("label:"):
                want = t[6:].strip('"')
                rows = [i for i in rows if want in [x["name"] for x in i["labels"]]]
            elif ":" in t and not t.startswith('"'):
                continue  # other qualifiers: ignored
            else:
                rows = [i for i in rows if t.strip('"').lower() in i["title"].lower()]
        rows.sort(key=self.tie)
        rows.sort(key=lambda i: i["created_at"], reverse=True)  # stable: ties keep `tie` order
        per_page, page = int(request.query_params.get("per_page", 30)), int(request.query_params.get("page", 1))
        items = [{**{k: v for k, v in i.items() if k != "repo"},
                  "repository_url": f"https://api.github.com/repos/{i['repo']}"}
                 for i in rows[(page - 1) * per_page: page * per_page]]
        return JSONResponse({"total_count": len(rows), "incomplete_results": False, "items": items})
