"""A local fake of the GitHub REST API for issues: pinned version header, bearer auth, Link-header
paging, pull requests mixed into issue lists, search with total_count, and rate-limit headers.

As GitHub does: lists honour `since` (an ISO 8601 instant); search honours `is:open`/`is:closed`,
`reason:completed` / `reason:"not planned"` (the close reason), `updated:>=` and `created:<=` (a date,
or an ISO 8601 date-time with its zone: that instant), and `sort` (created, updated) with `order`. An
issue's comments are listed by ascending id, paged by page number, and honour `since` (updated at or after)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')
"""A search term: a word, a qualifier (its value maybe quoted) or a quoted phrase."""


def _instant(value: str) -> datetime:
    """A time as GitHub reads it in `since` and `updated:>=`: a date is that day's start (UTC)."""
    if "T" not in value:
        value += "T00:00:00Z"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class FakeGitHub:
    repo: str = "acme/app"
    token: str = "ghp_faketokenvalue1234567890"
    issues: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    fail_after_write: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """Answers for the next writes *after* they were applied (GitHub's 502 after an issue was created)."""
    search_total: int | None = None
    incomplete_search: int = 0
    """Searches GitHub answers before finishing them (`incomplete_results: true`: it timed out), each holding only
    the first half of the issues it found, as many as this says; then complete answers again."""
    clock: int = 0
    comment_ids: int = 0

    def app(self) -> Starlette:
        base = f"/repos/{self.repo}"
        return Starlette(routes=[
            Route(f"{base}/issues", self.list_or_create, methods=["GET", "POST"]),
            Route(f"{base}/issues/{{n:int}}", self.issue, methods=["GET", "PATCH"]),
            Route(f"{base}/issues/{{n:int}}/comments", self.issue_comments, methods=["GET", "POST"]),
            Route(f"{base}/issues/{{n:int}}/labels", self.add_labels, methods=["POST"]),
            Route(f"{base}/issues/{{n:int}}/labels/{{name:path}}", self.remove_label, methods=["DELETE"]),
            Route(f"{base}/labels", self.labels, methods=["GET"]),
            Route(f"{base}/assignees", self.assignees, methods=["GET"]),
            Route("/search/issues", self.search, methods=["GET"]),
        ])

    def _stamp(self) -> str:
        self.clock += 1
        return f"2026-11-23T10:{self.clock // 60:02d}:{self.clock % 60:02d}Z"

    def add(self, title: str, *, pr: bool = False, labels: list[str] | None = None, state: str = "open") -> dict[str, Any]:
        number = len(self.issues) + 1
        now = self._stamp()
        issue = {"id": 5000 + number, "number": number, "title": title, "body": "", "state": state, "state_reason": None,
                 "labels": [{"name": n} for n in labels or []], "assignee": None, "assignees": [], "user": {"login": "octo"},
                 "created_at": now, "updated_at": now, "html_url": f"https://github.com/{self.repo}/issues/{number}"}
        if pr:
            issue["pull_request"] = {"url": "x"}
        self.issues.append(issue)
        return issue

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Bad credentials"}, 401)
        if request.headers.get("x-github-api-version") != "2022-11-28":
            return JSONResponse({"message": "Unsupported API version"}, 400)
        return injected(self.fail_next)

    def _paged(self, request: Request, rows: list[Any]) -> Response:
        per_page, page = int(request.query_params.get("per_page", 30)), int(request.query_params.get("page", 1))
        chunk = rows[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(rows):
            query = dict(request.query_params, page=str(page + 1))
            url = str(request.url.replace(query="&".join(f"{k}={v}" for k, v in query.items())))
            headers["Link"] = f'<{url}>; rel="next", <{url}>; rel="last"'
        return JSONResponse(chunk, headers=headers)

    async def list_or_create(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if request.method == "POST":
            body = await request.json()
            issue = self.add(body["title"], labels=body.get("labels"))
            issue["body"] = body.get("body", "")
            if body.get("assignees"):
                issue["assignees"] = [{"login": a} for a in body["assignees"]]
                issue["assignee"] = issue["assignees"][0]
            return injected(self.fail_after_write) or JSONResponse(issue, 201)
        state = request.query_params.get("state", "open")
        rows = [i for i in self.issues if state == "all" or i["state"] == state]
        if labels := request.query_params.get("labels"):
            rows = [i for i in rows if set(labels.split(",")) <= {label["name"] for label in i["labels"]}]
        if since := request.query_params.get("since"):
            rows = [i for i in rows if _instant(i["updated_at"]) >= _instant(since)]
        if request.query_params.get("sort") == "created":  # by creation: the issue number's order
            rows.sort(key=lambda i: i["number"], reverse=request.query_params.get("direction", "desc") == "desc")
        else:
            rows.sort(key=lambda i: i["updated_at"], reverse=True)
        return self._paged(request, rows)

    async def add_labels(self, request: Request) -> Response:
        """`POST …/issues/{n}/labels` {labels: [...]}: adds to the issue's labels (keeps the others); answers them all."""
        if failure := await self._begin(request):
            return failure
        found = next((i for i in self.issues if i["number"] == request.path_params["n"]), None)
        if found is None:
            return JSONResponse({"message": "Not Found"}, 404)
        names = [label["name"] for label in found["labels"]]
        for name in (await request.json()).get("labels", []):
            if name not in names:
                names.append(name)
        found["labels"] = [{"name": n} for n in names]
        found["updated_at"] = self._stamp()
        return JSONResponse(found["labels"])

    async def remove_label(self, request: Request) -> Response:
        """`DELETE …/issues/{n}/labels/{name}`: removes one label; 404 "Label does not exist" when the issue lacks it."""
        if failure := await self._begin(request):
            return failure
        found = next((i for i in self.issues if i["number"] == request.path_params["n"]), None)
        name = request.path_params["name"]
        if found is None or name not in [label["name"] for label in found["labels"]]:
            return JSONResponse({"message": "Label does not exist"}, 404)
        found["labels"] = [label for label in found["labels"] if label["name"] != name]
        found["updated_at"] = self._stamp()
        return JSONResponse(found["labels"])

    async def issue(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        n = request.path_params["n"]
        found = next((i for i in self.issues if i["number"] == n), None)
        if found is None:
            return JSONResponse({"message": "Not Found"}, 404)
        if request.method == "PATCH":
            body = await request.json()
            for key in ("title", "body", "state", "state_reason"):
                if key in body:
                    found[key] = body[key]
            if "labels" in body:
                found["labels"] = [{"name": n} for n in body["labels"]]
            if "assignees" in body:
                found["assignees"] = [{"login": a} for a in body["assignees"]]
            if body.get("state") == "open":
                found["state_reason"] = "reopened"
            found["updated_at"] = self._stamp()
        return JSONResponse(found)

    async def issue_comments(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        n = request.path_params["n"]
        rows = self.comments.setdefault(n, [])
        if request.method == "POST":
            self.comment_ids += 1  # ids grow across all comments and are never reused, as GitHub's
            now = self._stamp()
            comment = {"id": 9000 + self.comment_ids, "body": (await request.json())["body"], "user": {"login": "bot"},
                       "created_at": now, "updated_at": now}
            rows.append(comment)
            return JSONResponse(comment, 201)
        ordered = sorted(rows, key=lambda c: c["id"])  # ascending id, as GitHub lists an issue's comments
        if since := request.query_params.get("since"):  # comments *updated* at or after that instant
            ordered = [c for c in ordered if _instant(c.get("updated_at", c["created_at"])) >= _instant(since)]
        return self._paged(request, ordered)

    async def labels(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse([{"name": "bug"}, {"name": "enhancement"}, {"name": "priority: high"}])

    async def assignees(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse([{"login": "octocat"}, {"login": "hubot"}])

    async def search(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if len(request.query_params["q"]) > 256:  # as GitHub: qualifiers count
            return JSONResponse({"message": "Validation Failed", "errors": [
                {"message": "The search is longer than 256 characters.", "resource": "Search", "field": "q", "code": "invalid"}]}, 422)
        q = request.query_params["q"].replace('reason:"not planned"', "reason:not_planned")
        tokens = [t.strip("()") for t in _TOKEN.findall(q)]  # as GitHub: parentheses group, quoted phrases are text
        words = [t.strip('"') for t in tokens if t and t not in ("OR", "AND", "NOT") and (t.startswith('"') or ":" not in t)]
        rows = [i for i in self.issues if all(w.lower() in i["title"].lower() for w in words)]
        for term in tokens:
            if term in ("is:open", "is:closed"):
                rows = [i for i in rows if i["state"] == term.removeprefix("is:")]
            elif term.startswith("reason:"):
                rows = [i for i in rows if i["state"] == "closed" and i.get("state_reason") == term.removeprefix("reason:")]
            elif term.startswith("updated:>="):
                rows = [i for i in rows if _instant(i["updated_at"]) >= _instant(term.removeprefix("updated:>="))]
            elif term.startswith("created:<="):
                rows = [i for i in rows if _instant(i["created_at"]) <= _instant(term.removeprefix("created:<="))]
            elif term.startswith("created:<"):
                rows = [i for i in rows if _instant(i["created_at"]) < _instant(term.removeprefix("created:<"))]
        scopes = [t.split(":", 1)[1].lower() for t in tokens if t.lower().startswith("repo:")]
        if scopes and self.repo.lower() not in scopes:  # GitHub ORs repo: qualifiers; this fake holds one repository
            rows = []
        if sort := request.query_params.get("sort"):  # created, updated, comments; order desc by default (best match without)
            rows = sorted(rows, key=lambda i: i[f"{sort}_at"], reverse=request.query_params.get("order", "desc") == "desc")
        per_page, page = int(request.query_params.get("per_page", 30)), int(request.query_params.get("page", 1))
        total = self.search_total if self.search_total is not None else len(rows)
        origin = f"{str(request.base_url).rstrip('/')}/repos/{self.repo}"  # as GitHub: each item names its repository
        incomplete = self.incomplete_search > 0
        if incomplete:
            self.incomplete_search -= 1
            rows = rows[: len(rows) // 2]
        items = [{**i, "repository_url": origin} for i in rows[(page - 1) * per_page : page * per_page]]
        return JSONResponse({"total_count": total, "incomplete_results": incomplete, "items": items})
