"""A local fake of the Zendesk Support API: Basic `{email}/token:{token}`, cursor paging with
`meta.has_more`/`after_cursor` (the cursor names the last row's sort key, as Zendesk's do; tickets by
`sort` id or updated_at), `/search.json` with `count` and `next_page`, `/search/export.json` (cursor), `safe_update` 409s,
closed tickets that refuse changes, and recorded requests.

As Zendesk does: a ticket update answers `{ticket, audit}`, the audit's `events` naming the comment it
added (`type: Comment`, its `id`); `/groups.json` lists the groups, and a ticket created without a
`group_id` lands in the default group; search honours `group:` (name or id) and `updated>=`, where a
bare date is the whole day in the account's zone (UTC here) and an ISO date-time is that instant.
`answer_together = n` holds each update's answer back, after its write is applied, until n updates
have been applied (as network and processing delay do), so concurrent writers' answers cross."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

USERS = [{"id": 501, "name": "Agent Smith", "email": "smith@acme.test"}, {"id": 502, "name": "Customer Jones", "email": "jones@example.com"}]
GROUPS = [{"id": 360001, "name": "Billing", "deleted": False}, {"id": 360002, "name": "Support", "deleted": False},
          {"id": 360003, "name": "Old Team", "deleted": True}]
DEFAULT_GROUP = 360002


def _instant(value: str) -> datetime:
    """A search's `updated>=` value as Zendesk reads it: a date is that day's start (account zone UTC)."""
    if "T" not in value:
        value += "T00:00:00Z"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class FakeZendesk:
    email: str = "agent@acme.test"
    token: str = "zd-token-123"
    tickets: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    fail_after_write: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """Answers for the next creates *after* they were stored (a 5xx after the ticket was saved)."""
    search_count: int | None = None
    clock: int = 0
    groups: list[dict[str, Any]] = field(default_factory=lambda: [dict(g) for g in GROUPS])
    answer_together: int = 0
    _applied: int = 0
    _all_applied: anyio.Event | None = None

    def app(self) -> Starlette:
        v2 = "/api/v2"
        return Starlette(routes=[
            Route(f"{v2}/tickets.json", self.tickets_route, methods=["GET", "POST"]),
            Route(f"{v2}/tickets/{{id:int}}.json", self.ticket, methods=["GET", "PUT", "DELETE"]),
            Route(f"{v2}/tickets/{{id:int}}/comments.json", self.ticket_comments, methods=["GET"]),
            Route(f"{v2}/search.json", self.search, methods=["GET"]),
            Route(f"{v2}/search/export.json", self.search_export, methods=["GET"]),
            Route(f"{v2}/users/search.json", self.user_search, methods=["GET"]),
            Route(f"{v2}/users/show_many.json", self.show_many, methods=["GET"]),
            Route(f"{v2}/groups.json", self.groups_route, methods=["GET"]),
        ])

    def _stamp(self) -> str:
        self.clock += 1
        return f"2026-11-23T10:{self.clock // 60:02d}:{self.clock % 60:02d}Z"

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        if request.headers.get("authorization") != "Basic " + base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode():
            return JSONResponse({"error": "Couldn't authenticate you"}, 401)
        return injected(self.fail_next)

    def _cursor_page(self, request: Request, rows: list[dict[str, Any]], key: str,
                     sort_key: Callable[[dict[str, Any]], list[Any]] = lambda r: [r["id"]], desc: bool = False) -> Response:
        """Cursor pagination as Zendesk does it: the cursor names the last row's sort key (not an offset), and the
        next page holds the rows strictly after it in the order, so rows added or moved meanwhile shift nothing."""
        size = int(request.query_params.get("page[size]", 100))
        ordered = sorted(rows, key=sort_key, reverse=desc)
        if after := request.query_params.get("page[after]"):
            last = json.loads(base64.urlsafe_b64decode(after.encode()))
            ordered = [r for r in ordered if (sort_key(r) < last if desc else sort_key(r) > last)]
        chunk = ordered[:size]
        more = len(ordered) > size
        cursor = base64.urlsafe_b64encode(json.dumps(sort_key(chunk[-1])).encode()).decode() if more else None
        return JSONResponse({key: chunk, "meta": {"has_more": more, "after_cursor": cursor},
                             "links": {"next": f"?page[after]={cursor}" if more else None}})

    def _add_comment(self, ticket_id: int, body: str, public: bool, author: int) -> dict[str, Any]:
        rows = self.comments.setdefault(ticket_id, [])
        rows.append({"id": 7000 + sum(len(c) for c in self.comments.values()), "body": body, "public": public,
                     "author_id": author, "created_at": self._stamp()})
        return rows[-1]

    async def tickets_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if request.method == "POST":
            body = (await request.json())["ticket"]
            now = self._stamp()
            ticket = {"id": len(self.tickets) + 1, "subject": body["subject"], "description": body["comment"]["body"],
                      "status": "new", "priority": body.get("priority"), "type": body.get("type"), "tags": body.get("tags", []),
                      "assignee_id": body.get("assignee_id"), "requester_id": 502, "group_id": body.get("group_id") or DEFAULT_GROUP,
                      "problem_id": None, "external_id": body.get("external_id"), "created_at": now, "updated_at": now}
            self.tickets.append(ticket)
            self._add_comment(ticket["id"], body["comment"]["body"], True, 502)
            return injected(self.fail_after_write) or JSONResponse({"ticket": ticket}, 201)
        rows = list(self.tickets)
        if external := request.query_params.get("external_id"):  # List Tickets by external id
            rows = [t for t in rows if t.get("external_id") == external]
        sort = request.query_params.get("sort", "id")  # cursor pagination's `sort`: id (default) or updated_at, `-` descending
        if sort.lstrip("-") not in ("id", "updated_at"):
            return JSONResponse({"error": "InvalidPaginationParameter", "description": f"sort {sort} is not supported"}, 400)
        field_name = sort.lstrip("-")
        return self._cursor_page(request, rows, "tickets", lambda t: [t[field_name], t["id"]], sort.startswith("-"))

    async def ticket(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        found = next((t for t in self.tickets if t["id"] == request.path_params["id"]), None)
        if found is None:
            return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, 404)
        if request.method == "DELETE":
            self.tickets.remove(found)
            return Response(status_code=204)
        if request.method == "PUT":
            body = (await request.json())["ticket"]
            if found["status"] == "closed":
                return JSONResponse({"error": "RecordInvalid", "description": "Status: closed prevents ticket update"}, 422)
            if body.pop("safe_update", False) and body.pop("updated_stamp", None) != found["updated_at"]:
                return JSONResponse({"error": "UpdateConflict", "description": "Safe Update prevented the update"}, 409)
            events = []
            if comment := body.pop("comment", None):
                added = self._add_comment(found["id"], comment["body"], comment.get("public", True), 501)
                events.append({"id": added["id"], "type": "Comment", "author_id": 501, "body": added["body"],
                               "public": added["public"], "attachments": []})
            events += [{"id": 8000 + len(self.requests), "type": "Change", "field_name": k, "value": v} for k, v in body.items()]
            found.update(body)
            found["updated_at"] = self._stamp()
            answer = {"ticket": dict(found), "audit": {"id": 9000 + len(self.requests), "ticket_id": found["id"], "author_id": 501,
                                                       "created_at": found["updated_at"], "events": events}}
            if self.answer_together:
                await self._wait_for_the_others()
            return JSONResponse(answer)
        return JSONResponse({"ticket": found})

    async def _wait_for_the_others(self) -> None:
        """Answer only once `answer_together` updates have been applied (a 10 s guard against a hang)."""
        self._all_applied = self._all_applied or anyio.Event()
        self._applied += 1
        if self._applied >= self.answer_together:
            self._all_applied.set()
        with anyio.fail_after(10):
            await self._all_applied.wait()

    async def ticket_comments(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        rows = list(self.comments.get(request.path_params["id"], []))
        return self._cursor_page(request, rows, "comments", desc=request.query_params.get("sort_order") == "desc")

    def _matches(self, query: str) -> list[dict[str, Any]]:
        terms = query.split()
        words = [w for w in terms if ":" not in w and "=" not in w and ">" not in w]
        rows = [dict(t, result_type="ticket") for t in self.tickets if all(w.lower() in t["subject"].lower() for w in words)]
        for term in terms:
            if term.startswith("group:"):
                names = {str(g["id"]): g["name"].lower() for g in self.groups}
                wanted = term.removeprefix("group:").lower()
                rows = [t for t in rows if wanted in (str(t["group_id"]), names.get(str(t["group_id"])))]
            elif term.startswith("updated>="):
                since = _instant(term.removeprefix("updated>="))
                rows = [t for t in rows if _instant(t["updated_at"]) >= since]
        if statuses := {term.removeprefix("status:") for term in terms if term.startswith("status:")}:
            rows = [t for t in rows if t["status"] in statuses]  # several values of one property: any of them
        return rows

    async def search(self, request: Request) -> Response:
        """List Search Results: offset paging (`page`, `per_page`), `count`, `next_page`."""
        if failure := await self._begin(request):
            return failure
        rows = self._matches(request.query_params["query"])
        if sort_by := request.query_params.get("sort_by"):  # updated_at, created_at, …; sort_order desc by default
            rows.sort(key=lambda t: str(t.get(sort_by)), reverse=request.query_params.get("sort_order", "desc") == "desc")
        per_page, page = int(request.query_params.get("per_page", 100)), int(request.query_params.get("page", 1))
        count = self.search_count if self.search_count is not None else len(rows)
        more = page * per_page < count
        return JSONResponse({"results": rows[(page - 1) * per_page : page * per_page], "count": count,
                             "next_page": f"https://x/api/v2/search.json?page={page + 1}" if more else None})

    async def search_export(self, request: Request) -> Response:
        """Export Search Results: `filter[type]` required, cursor pagination (`page[size]` ≤ 1000, `page[after]`),
        no count and no 1,000-result cap; the fake orders by id."""
        if failure := await self._begin(request):
            return failure
        if request.query_params.get("filter[type]") not in ("ticket", "user", "organization", "group"):
            return JSONResponse({"error": "InvalidParameter", "description": "filter[type] is required"}, 400)
        if int(request.query_params.get("page[size]", 100)) > 1000:
            return JSONResponse({"error": "InvalidPaginationParameter", "description": "page[size] is at most 1000"}, 400)
        return self._cursor_page(request, self._matches(request.query_params["query"]), "results")

    async def groups_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return self._cursor_page(request, self.groups, "groups")

    async def user_search(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        q = request.query_params["query"].lower()
        return JSONResponse({"users": [u for u in USERS if q in u["name"].lower() or q in u["email"].lower()]})

    async def show_many(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        ids = {int(i) for i in request.query_params["ids"].split(",")}
        if len(ids) > 100:  # Show Many Users: "up to 100 user ids"
            return JSONResponse({"error": "InvalidPaginationParameter", "description": "Too many ids (maximum is 100)"}, 400)
        return JSONResponse({"users": [u for u in USERS if u["id"] in ids]})
