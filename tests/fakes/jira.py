"""A local fake of Jira Cloud REST v3, reproducing the documented shapes the connector relies on:
Basic auth, `/search/jql` with `nextPageToken` (here a position, which Jira does not promise
otherwise) and `ORDER BY`, ADF bodies, transitions by id, issue links,
`errorMessages` errors — plus injectable failures (429 + Retry-After, 401, 5xx, malformed JSON).
Every request is recorded so tests can check what the connector sent.

As on Jira Cloud: in `POST /issueLink` the *inwardIssue* is the issue the outward phrase belongs to
({Blocks, inwardIssue A, outwardIssue B} is "A blocks B"; GET shows A `{outwardIssue: B}` and B
`{inwardIssue: A}`; mozilla/jira-bugzilla-integration#1285, atlassian/atlassian-mcp-server#112). A JQL
date-time (`updated >= "yyyy-MM-dd HH:mm"`) has no zone and is read in the searching user's profile
zone, which `GET /myself` gives as `timeZone`. Comments page by `startAt` (an offset, as Jira's) in `orderBy`
(`created`, the default, or `-created`); their ids are never reused."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

STATUSES = {
    "To Do": {"id": "10000", "name": "To Do", "statusCategory": {"key": "new"}},
    "In Progress": {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
    "Waiting for customer": {"id": "10010", "name": "Waiting for customer", "statusCategory": {"key": "indeterminate"}},
    "Done": {"id": "10001", "name": "Done", "statusCategory": {"key": "done"}},
}
OTHER_STATUSES = {
    "Closed": {"id": "6", "name": "Closed", "statusCategory": {"key": "done"}},
    "Won't Do": {"id": "10020", "name": "Won't Do", "statusCategory": {"key": "done"}},
    "Blocked": {"id": "10030", "name": "Blocked", "statusCategory": {"key": "new"}},
}
"""Statuses other workflows of this Jira use (`GET /status` lists them; tests set them on issues directly)."""
TRANSITIONS = {"11": ("Start progress", "In Progress"), "21": ("Wait for customer", "Waiting for customer"),
               "31": ("Resolve", "Done"), "41": ("Reopen", "To Do")}
ALLOWED = {"To Do": ["11", "31"], "In Progress": ["21", "31"], "Waiting for customer": ["11"], "Done": ["41"],
           "Closed": ["41"], "Won't Do": ["41"], "Blocked": ["11"]}
LINK_TYPES = {"Blocks": ("is blocked by", "blocks"), "Duplicate": ("is duplicated by", "duplicates"),
              "Relates": ("relates to", "relates to")}
"""Jira's default link types: name → (inward phrase, outward phrase)."""
CATEGORY_NAMES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}
USERS = [{"accountId": "acc-1", "displayName": "Ada Lovelace", "emailAddress": "ada@example.com", "accountType": "atlassian"},
         {"accountId": "app-1", "displayName": "Automation", "accountType": "app"}]


@dataclass
class FakeJira:
    email: str = "bot@example.com"
    token: str = "jira-api-token-xyz"
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    fail_after_write: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """Answers for the next creates *after* they were stored (Atlassian's edge 504, a failed post-function 500)."""
    project_types: dict[str, str] = field(default_factory=dict)
    """`projectTypeKey` per project (`software`, `service_desk`, `business`); unlisted: service_desk."""
    counter: int = 0
    comment_ids: int = 0
    clock: int = 0
    time_zone: str = "UTC"
    """The API user's profile zone (`GET /myself` `timeZone`), the one JQL date-times are read in."""

    def app(self) -> Starlette:
        base = "/rest/api/3"
        return Starlette(routes=[
            Route(f"{base}/search/jql", self.search, methods=["GET"]),
            Route(f"{base}/issue", self.create, methods=["POST"]),
            Route(f"{base}/issue/{{key}}", self.issue, methods=["GET", "PUT", "DELETE"]),
            Route(f"{base}/issue/{{key}}/comment", self.comment, methods=["GET", "POST"]),
            Route(f"{base}/issue/{{key}}/transitions", self.transitions, methods=["GET", "POST"]),
            Route(f"{base}/issueLink", self.link, methods=["POST"]),
            Route(f"{base}/user/search", self.users, methods=["GET"]),
            Route(f"{base}/myself", self.myself, methods=["GET"]),
            Route(f"{base}/priority", self.priorities, methods=["GET"]),
            Route(f"{base}/project/{{key}}", self.project, methods=["GET"]),
            Route(f"{base}/project/{{key}}/statuses", self.statuses, methods=["GET"]),
            Route(f"{base}/status", self.all_statuses, methods=["GET"]),
        ])

    # -- plumbing --------------------------------------------------------------------------

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"errorMessages": ["Client must be authenticated to access this resource."]}, 401)
        return injected(self.fail_next)

    def _stamp(self) -> str:
        self.clock += 1
        return f"2026-11-23T10:{self.clock // 60:02d}:{self.clock % 60:02d}.000+0000"

    def _get(self, key: str) -> dict[str, Any] | None:
        return self.issues.get(key)

    @staticmethod
    def _not_found() -> JSONResponse:
        return JSONResponse({"errorMessages": ["Issue does not exist or you do not have permission to see it."]}, 404)

    # -- endpoints -------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        jql = request.query_params.get("jql", "")
        if not re.split(r"(?i)\border\s+by\b", jql, maxsplit=1)[0].strip():  # as Jira Cloud's enhanced search
            return JSONResponse({"errorMessages": ["Unbounded JQL queries are not allowed here. Please add a search "
                                                   "restriction to your query."], "errors": {}}, 400)
        size = int(request.query_params.get("maxResults", 50))
        offset = int(request.query_params.get("nextPageToken", "0") or 0)
        matches = list(self.issues.values())
        if project := re.search(r'project = "([^"]+)"', jql):
            matches = [i for i in matches if i["fields"]["project"]["key"] == project.group(1)]
        for label in re.findall(r'labels = "([^"]+)"', jql):
            matches = [i for i in matches if label in i["fields"]["labels"]]
        if text := re.search(r'text ~ "([^"]+)"', jql):
            matches = [i for i in matches if text.group(1).lower() in i["fields"]["summary"].lower()]
        if wanted := re.search(r"statusCategory in \(([^)]*)\)", jql):  # by category name
            names = {v.strip().strip('"') for v in wanted.group(1).split(",")}
            keys = {k for k, n in CATEGORY_NAMES.items() if n in names}
            matches = [i for i in matches if i["fields"]["status"]["statusCategory"]["key"] in keys]
        if wanted := re.search(r"(?<!\w)status in \(([^)]*)\)", jql):  # by id (unquoted) or name (quoted)
            values = [v.strip() for v in wanted.group(1).split(",")]
            ids, names = {v for v in values if v.isdigit()}, {v.strip('"') for v in values if not v.isdigit()}
            matches = [i for i in matches if str(i["fields"]["status"].get("id")) in ids or i["fields"]["status"]["name"] in names]
        if since := re.search(r'updated >= "(\d{4}-\d{2}-\d{2} \d{2}:\d{2})"', jql):
            start = datetime.strptime(since.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(self.time_zone))
            matches = [i for i in matches if _instant(i["fields"]["updated"]) >= start]
        order = re.search(r"ORDER BY (.*)$", jql)
        for term in reversed([t.strip().split() for t in order.group(1).split(",")] if order else [["updated", "DESC"]]):
            name, desc = term[0], len(term) > 1 and term[1].upper() == "DESC"
            matches.sort(key=lambda i, n=name: _sort_value(i, n), reverse=desc)
        page = matches[offset : offset + size]
        body: dict[str, Any] = {"issues": page, "isLast": offset + size >= len(matches)}
        if not body["isLast"]:
            body["nextPageToken"] = str(offset + size)
        return JSONResponse(body)

    async def create(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        fields = (await request.json())["fields"]
        if not str(fields.get("summary", "")).strip():
            return JSONResponse({"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}, 400)
        self.counter += 1
        key, now = f"{fields['project']['key']}-{self.counter}", self._stamp()
        if bad := self._unknown_assignee(fields):
            return bad
        assignee = next((u for u in USERS if u["accountId"] == (fields.get("assignee") or {}).get("accountId")), None)
        self.issues[key] = {"id": str(10000 + self.counter), "key": key, "fields": {
            "summary": fields["summary"], "description": fields.get("description"), "status": STATUSES["To Do"],
            "priority": fields.get("priority") or {"name": "Medium"}, "issuetype": fields["issuetype"],
            "labels": fields.get("labels", []), "assignee": assignee, "reporter": USERS[0], "created": now,
            "updated": now, "project": {"key": fields["project"]["key"]}, "issuelinks": [], "comment": {"comments": []}}}
        return injected(self.fail_after_write) or JSONResponse({"id": self.issues[key]["id"], "key": key}, 201)

    async def issue(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self._get(request.path_params["key"])
        if found is None:
            return self._not_found()
        if request.method == "DELETE":
            del self.issues[found["key"]]
            return Response(status_code=204)
        if request.method == "PUT":
            fields = (await request.json())["fields"]
            if bad := self._unknown_assignee(fields):
                return bad
            for name, value in fields.items():
                found["fields"][name] = value
            if "assignee" in fields:  # Jira answers the whole user, as on create
                found["fields"]["assignee"] = self._user(fields["assignee"])
            found["fields"]["updated"] = self._stamp()
            return Response(status_code=204)
        out = dict(found)
        if request.query_params.get("expand") == "transitions":
            out["transitions"] = self._allowed(found)
        return JSONResponse(out)

    @staticmethod
    def _user(ref: dict[str, Any] | None) -> dict[str, Any] | None:
        return next((u for u in USERS if ref and u["accountId"] == ref.get("accountId")), None)

    def _unknown_assignee(self, fields: dict[str, Any]) -> JSONResponse | None:
        """Jira's 400 for an assignee accountId that names no user (it takes accountIds only, never emails)."""
        ref = fields.get("assignee")
        if ref and self._user(ref) is None:
            return JSONResponse({"errorMessages": [], "errors": {"assignee": f"User '{ref.get('accountId')}' does not exist."}}, 400)
        return None

    def _allowed(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        current = issue["fields"]["status"]["name"]
        return [{"id": tid, "name": TRANSITIONS[tid][0], "to": STATUSES[TRANSITIONS[tid][1]]} for tid in ALLOWED[current]]

    async def transitions(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self._get(request.path_params["key"])
        if found is None:
            return self._not_found()
        if request.method == "GET":
            return JSONResponse({"transitions": self._allowed(found)})
        wanted = (await request.json())["transition"]["id"]
        if wanted not in ALLOWED[found["fields"]["status"]["name"]]:
            return JSONResponse({"errorMessages": ["Transition id '%s' is not valid for this issue." % wanted]}, 400)
        found["fields"]["status"] = STATUSES[TRANSITIONS[wanted][1]]
        found["fields"]["updated"] = self._stamp()
        return Response(status_code=204)

    async def comment(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = self._get(request.path_params["key"])
        if found is None:
            return self._not_found()
        comments = found["fields"]["comment"]["comments"]
        if request.method == "POST":
            payload = await request.json()
            self.comment_ids += 1  # never reused after a delete, as Jira's ids
            comment = {"id": str(20000 + self.comment_ids), "author": USERS[0], "body": payload["body"],
                       "created": self._stamp(), "properties": payload.get("properties", []),
                       **({"visibility": payload["visibility"]} if payload.get("visibility") else {})}
            comments.append(comment)
            return JSONResponse(comment, 201)
        start, size = int(request.query_params.get("startAt", 0)), int(request.query_params.get("maxResults", 50))
        order = request.query_params.get("orderBy", "created")  # created / +created (oldest first) or -created
        rows = sorted(comments, key=lambda c: (_instant(c["created"]), int(c["id"])), reverse=order == "-created")
        return JSONResponse({"startAt": start, "maxResults": size, "total": len(rows), "comments": rows[start : start + size]})

    async def link(self, request: Request) -> Response:
        """Link `inwardIssue` <outward phrase> `outwardIssue`, as Jira Cloud does; a link that exists is
        answered as created and not added again."""
        if failure := await self._begin(request):
            return failure
        payload = await request.json()
        name = payload["type"]["name"]
        if name not in LINK_TYPES:
            return JSONResponse({"errorMessages": [f"No issue link type with name '{name}' found."]}, 404)
        source, target = self._get(payload["inwardIssue"]["key"]), self._get(payload["outwardIssue"]["key"])
        if source is None or target is None:
            return self._not_found()
        kind = {"name": name, "inward": LINK_TYPES[name][0], "outward": LINK_TYPES[name][1]}
        if any(link["type"]["name"] == name and link.get("outwardIssue", {}).get("key") == target["key"]
               for link in source["fields"]["issuelinks"]):
            return Response(status_code=201)
        source["fields"]["issuelinks"].append({"type": kind, "outwardIssue": {"key": target["key"]}})
        target["fields"]["issuelinks"].append({"type": kind, "inwardIssue": {"key": source["key"]}})
        return Response(status_code=201)

    async def myself(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse({"accountId": USERS[0]["accountId"], "displayName": USERS[0]["displayName"],
                             "emailAddress": self.email, "timeZone": self.time_zone})

    async def users(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        query = request.query_params.get("query", "").lower()  # matched without case on display name and email
        return JSONResponse([u for u in USERS if query in u["displayName"].lower() or query in u.get("emailAddress", "").lower()])

    async def priorities(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse([{"name": n} for n in ("Highest", "High", "Medium", "Low", "Lowest")])

    async def project(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        key = request.path_params["key"]
        return JSONResponse({"key": key, "projectTypeKey": self.project_types.get(key, "service_desk"),
                             "issueTypes": [{"name": "Task"}, {"name": "Bug"}]})

    async def all_statuses(self, request: Request) -> Response:
        """`GET /status`: every status of every workflow, with its id and category."""
        if failure := await self._begin(request):
            return failure
        every = {**STATUSES, **OTHER_STATUSES}
        return JSONResponse([{"id": s.get("id") or name, **s} for name, s in every.items()])

    async def statuses(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return JSONResponse([{"name": "Task", "statuses": list(STATUSES.values())}])


def _sort_value(issue: dict[str, Any], name: str) -> Any:
    """An ORDER BY field's value: `key` by project then number, times as instants."""
    if name == "key":
        project, _, number = issue["key"].rpartition("-")
        return project, int(number)
    return _instant(issue["fields"][name])


def _instant(stamp: str) -> datetime:
    """Jira's `2026-11-23T10:00:00.000+0000` as an aware datetime."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")
