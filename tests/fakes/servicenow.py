"""A local fake of the ServiceNow Table API (incident, sys_user, sys_user_group, sys_journal_field)
and `/oauth_token.do`: `{"result": …}` bodies, encoded queries (the subset the connector sends),
`sysparm_limit`/`sysparm_offset` with `X-Total-Count`, `sysparm_fields`, close-code enforcement,
encoded queries with `^OR`, `^NQ`, comparisons and multi-key ORDERBY, recorded requests. ACLs as ServiceNow applies them: rows in `hidden` (read ACL) are dropped from a
page *after* the query was cut to `sysparm_limit` at `sysparm_offset` (so a page comes back short or
empty with 200, and `X-Total-Count` still counts them; KB3047115) and read one by one they are 404
"No Record found"; fields in `readonly_fields` (field write ACL) are skipped by POST and PATCH, which
still answer 200 with the record as stored. An update that changes nothing is not written
(`sys_mod_count` and `sys_updated_on` stay)."""

from __future__ import annotations

import base64
import random
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import injected, record

USERS = [{"sys_id": "a" * 32, "name": "Beth Anglin", "email": "beth@acme.test", "user_name": "beth.anglin"},
         {"sys_id": "b" * 32, "name": "David Loo", "email": "david@acme.test", "user_name": "david.loo"}]
GROUPS = [{"sys_id": "g" * 32, "name": "Service Desk"}]


@dataclass
class FakeServiceNow:
    user: str = "integration"
    password: str = "sn-pass"
    client_id: str = "sn-client"
    client_secret: str = "sn-secret"
    refresh_token: str = "sn-refresh-0"
    access_token: str | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    fail_after_write: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    """Answers for the next creates *after* they were stored (a 5xx from a business rule after the insert)."""
    clock: int = 0
    numbered: int = 0
    hidden: set[str] = field(default_factory=set)
    """sys_ids of rows (any table) the integration user may not read."""
    readonly_fields: set[str] = field(default_factory=set)
    """incident fields the integration user may not write: skipped without an error."""
    reads_together: int = 0
    """Hold each incident list read's answer until this many have arrived (as network delay does), so two
    writers both read before either writes."""
    _reads: int = 0
    _all_read: anyio.Event | None = None

    def app(self) -> Starlette:
        t = "/api/now/table"
        return Starlette(routes=[
            Route("/oauth_token.do", self.token, methods=["POST"]),
            Route(f"{t}/incident", self.incidents_route, methods=["GET", "POST"]),
            Route(f"{t}/incident/{{sys_id}}", self.incident, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{t}/sys_user", self.users, methods=["GET"]),
            Route(f"{t}/sys_user_group", self.groups, methods=["GET"]),
            Route(f"{t}/sys_journal_field", self.journal_route, methods=["GET"]),
        ])

    def _next_number(self) -> int:
        """Numbers are never reused, even after a delete (ServiceNow's number counter only moves on)."""
        self.numbered = max(self.numbered, 10000) + 1
        return self.numbered

    def _stamp(self) -> str:
        self.clock += 1
        return f"2026-11-23 10:{self.clock // 60:02d}:{self.clock % 60:02d}"

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != expected or form.get("refresh_token") != self.refresh_token:
            return JSONResponse({"error": "invalid_grant", "error_description": "access_denied"}, 401)
        self.access_token = "sn-access-" + secrets.token_hex(6)
        return JSONResponse({"access_token": self.access_token, "token_type": "Bearer", "expires_in": 1799,
                             "refresh_token": self.refresh_token, "scope": "useraccount"})

    async def _begin(self, request: Request) -> Response | None:
        await record(request, self.requests)
        auth = request.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if auth != basic and not (self.access_token and auth == f"Bearer {self.access_token}"):
            return JSONResponse({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
                                 "status": "failure"}, 401)
        return injected(self.fail_next)

    def _match(self, row: dict[str, Any], query: str) -> bool:
        """An encoded query as ServiceNow reads it: `^NQ` joins AND-groups with OR, `^` is AND, `^OR` binds
        tighter than `^` (`a^ORb^c` is (a or b) and c); ORDERBY clauses do not filter. Dot-walked fields
        (`assigned_to.user_name`) are not followed: such a clause matches every row."""
        return any(_group_matches(row, group) for group in query.split("^NQ"))

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> Response:
        """The query's rows cut at offset/limit, then the ones read ACLs hide removed (as ServiceNow does)."""
        limit, offset = int(request.query_params.get("sysparm_limit", 10000)), int(request.query_params.get("sysparm_offset", 0))
        page = [self._only(request, r) for r in rows[offset : offset + limit] if r.get("sys_id") not in self.hidden]
        return JSONResponse({"result": page}, headers={"X-Total-Count": str(len(rows))})

    @staticmethod
    def _only(request: Request, row: dict[str, Any]) -> dict[str, Any]:
        """`sysparm_fields`: only the fields asked for (a field of the table that is empty reads "")."""
        fields = request.query_params.get("sysparm_fields")
        return {f: row[f] for f in fields.split(",") if f in row} if fields else row

    async def incidents_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        if request.method == "POST":
            body = await request.json()
            now = self._stamp()
            impact, urgency = int(body.get("impact", 3)), int(body.get("urgency", 3))
            row = {"sys_id": secrets.token_hex(16), "number": f"INC{self._next_number():07d}", "state": "1",
                   "short_description": body["short_description"], "description": body.get("description", ""),
                   "impact": str(impact), "urgency": str(urgency), "priority": str(min(5, impact + urgency - 1)),
                   "category": body.get("category", "inquiry"), "assigned_to": body.get("assigned_to", ""),
                   "assignment_group": body.get("assignment_group", ""), "caller_id": USERS[1]["sys_id"], "opened_at": now,
                   "sys_created_on": now, "sys_updated_on": now, "sys_mod_count": "0", "parent_incident": "",
                   "close_code": "", "close_notes": "", "correlation_id": body.get("correlation_id", "")}
            _cut_to_columns(row)
            defaults = {"impact": "3", "urgency": "3", "priority": "5", "category": "inquiry"}
            for name in self.readonly_fields & row.keys():  # a field the user may not write keeps its default
                row[name] = defaults.get(name, "")
            row["priority"] = str(min(5, int(row["impact"]) + int(row["urgency"]) - 1))
            self.incidents.append(row)
            return injected(self.fail_after_write) or JSONResponse({"result": self._only(request, row)}, 201)
        query = request.query_params.get("sysparm_query", "")
        answer = self._page(request, _ordered([r for r in self.incidents if self._match(r, query)], query, len(self.requests)))
        if self.reads_together:
            self._all_read = self._all_read or anyio.Event()
            self._reads += 1
            if self._reads >= self.reads_together:
                self._all_read.set()
            with anyio.fail_after(10):  # a guard against a hang, never reached when the test is right
                await self._all_read.wait()
        return answer

    async def incident(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        row = next((r for r in self.incidents if r["sys_id"] == request.path_params["sys_id"]), None)
        if row is None or row["sys_id"] in self.hidden:
            return JSONResponse({"error": {"message": "No Record found",
                                           "detail": "Record doesn't exist or ACL restricts the record retrieval"},
                                 "status": "failure"}, 404)
        if request.method == "DELETE":
            self.incidents.remove(row)
            return Response(status_code=204)
        if request.method == "PATCH":
            body = await request.json()
            if body.get("state") == "6" and not (body.get("close_code") and body.get("close_notes")):
                return JSONResponse({"error": {"message": "Data Policy Exception: close_code, close_notes are mandatory"}}, 403)
            body = {k: v for k, v in body.items() if k not in self.readonly_fields}  # skipped, no error
            _cut_to_columns(body)
            journaled = False
            for journal in ("comments", "work_notes"):
                if journal in body:
                    self.journal.append({"sys_id": secrets.token_hex(16), "element_id": row["sys_id"], "element": journal,
                                         "value": body.pop(journal), "sys_created_on": self._stamp(), "sys_created_by": "integration"})
                    journaled = True
            if "impact" in body or "urgency" in body:
                body["priority"] = str(min(5, int(body.get("impact", row["impact"])) + int(body.get("urgency", row["urgency"])) - 1))
            if journaled or any(str(row.get(k)) != str(v) for k, v in body.items()):
                row.update(body)
                row["sys_updated_on"] = self._stamp()
                row["sys_mod_count"] = str(int(row["sys_mod_count"]) + 1)
        return JSONResponse({"result": self._only(request, row)})

    async def users(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        query = request.query_params.get("sysparm_query", "")
        if query.startswith("sys_idIN"):
            ids = query[len("sys_idIN"):].split(",")
            return self._page(request, [u for u in USERS if u["sys_id"] in ids])
        def matches(user: dict[str, Any], part: str) -> bool:  # one `^OR` term: fieldLIKEvalue or field=value
            field_, op, value = re.match(r"(\w+?)(LIKE|=)(.*)", part).groups()  # type: ignore[union-attr]
            return value.lower() in user[field_].lower() if op == "LIKE" else user[field_] == value

        return self._page(request, [u for u in USERS if any(matches(u, part) for part in query.split("^OR") if part)])

    async def groups(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        return self._page(request, [g for g in GROUPS if self._match(g, request.query_params.get("sysparm_query", ""))])

    async def journal_route(self, request: Request) -> Response:
        if failure := await self._begin(request):
            return failure
        query = request.query_params.get("sysparm_query", "")
        return self._page(request, _ordered([j for j in self.journal if self._match(j, query)], query, len(self.requests)))


_CLAUSE = re.compile(r"([a-z_0-9]+?(?:\.[a-z_0-9]+?)?)(NOT IN|IN|LIKE|STARTSWITH|>=|<=|!=|>|<|=)(.*)")


def _clause_matches(row: dict[str, Any], clause: str) -> bool:
    m = _CLAUSE.fullmatch(clause)
    if m is None:
        raise AssertionError(f"the fake cannot read the encoded-query clause {clause!r}")
    name, op, value = m.groups()
    if "." in name:
        return True
    have = str(row.get(name, ""))
    return {"IN": lambda: have in value.split(","), "NOT IN": lambda: have not in value.split(","), "LIKE": lambda: value.lower() in have.lower(),
            "STARTSWITH": lambda: have.startswith(value), ">=": lambda: have >= value, "<=": lambda: have <= value,
            "!=": lambda: have != value, ">": lambda: have > value, "<": lambda: have < value,
            "=": lambda: have == value}[op]()


def _group_matches(row: dict[str, Any], group: str) -> bool:
    terms: list[list[str]] = []  # AND of ORs
    for clause in group.split("^"):
        if not clause or clause.startswith("ORDERBY"):
            continue
        if clause.startswith("OR") and terms:
            terms[-1].append(clause[2:])
        else:
            terms.append([clause])
    return all(any(_clause_matches(row, c) for c in alternatives) for alternatives in terms)


def _ordered(rows: list[dict[str, Any]], query: str, seed: int) -> list[dict[str, Any]]:
    """`rows` in the query's ORDERBY / ORDERBYDESC order (first clause first). Rows the order leaves tied come
    in no set order, which may differ between two queries (a database's plan, as ServiceNow's): shuffled with
    `seed`. A query without ORDERBY keeps insertion order."""
    keys = [(c.removeprefix("ORDERBYDESC"), True) if c.startswith("ORDERBYDESC") else (c.removeprefix("ORDERBY"), False)
            for c in query.split("^") if c.startswith("ORDERBY")]
    if keys:
        rows = list(rows)
        random.Random(seed).shuffle(rows)
    for name, desc in reversed(keys):
        rows = sorted(rows, key=lambda r: str(r.get(name, "")), reverse=desc)
    return rows


COLUMN_MAX = {"short_description": 160, "description": 4000}
"""incident string columns' lengths out of the box: a longer value is stored cut, with a 200."""


def _cut_to_columns(values: dict[str, Any]) -> None:
    for name, limit in COLUMN_MAX.items():
        if isinstance(values.get(name), str):
            values[name] = values[name][:limit]
