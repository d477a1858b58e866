"""Jira Cloud (REST v3) as a ticketing backend.

Configuration: `JIRA_BASE_URL` (https://<site>.atlassian.net) and either `JIRA_EMAIL` +
`JIRA_API_TOKEN` (Basic) or `JIRA_OAUTH_TOKEN` (bearer). Search uses `/rest/api/3/search/jql`
with `nextPageToken`, newest created first by a key that never changes (`created`, then `key`), and
the cursor keeps the last issue shown: an issue another page already showed is not shown again, even if
Jira's token counts positions and an issue was created meanwhile (Jira does not document what its token
holds: an issue that leaves a filtered walk, e.g. closed during a walk of open ones, may then move
another past the boundary unseen); descriptions and comments are Atlassian Document Format, converted from and
to markdown (a description holding what markdown cannot carry is never replaced: `adf.lossy_nodes`).
Statuses are normalized from the status category (To Do → open, In Progress → in_progress, Done →
resolved, or closed when the status is named Closed or for work not done, e.g. Won't Do; names with
hold/blocked/waiting → on_hold); the native name is kept, and a move to a kind reachable by several
statuses takes the plainly named one or is refused listing them; a status query asks for exactly the
statuses that read as it, by id (`jira_status`). A create is settled by a marker label
(`providers.created`). An internal note is a JSM internal comment on a service project, restricted to
`JIRA_INTERNAL_COMMENT_ROLE` elsewhere, or refused. Jira has no version token and no conditional write,
so `expected_version` is checked against the issue's `updated` time just before the write, for updates
and transitions: best effort, a change made in that moment is not detected (the tools say so:
`version_check`). An update writes only the fields whose value differs from the issue's, and one that would
change nothing, like a move to the status the issue has, writes nothing and answers the issue as read whatever
`expected_version` says (`providers.unchanged`). Jira assigns by accountId only: an assignee given as an email is looked up with
`/user/search` first (`servers.ticketing.providers.users.one_user`). Comments are walked oldest first with
their place checked on every page (`jira_comments`: Jira pages them by offset only); Jira's shapes are read
in `jira_map`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from servers.kit.credentials import Basic, Bearer, connect
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
from servers.ticketing.checks import LINK_TYPES
from servers.ticketing.model import (
    Comment,
    CommentPage,
    Include,
    Link,
    Metadata,
    NewTicket,
    SearchQuery,
    Status,
    Ticket,
    TicketPage,
    TicketPatch,
    Transition,
    User,
)
from servers.ticketing.normal import is_email, name_key, same_name
from servers.ticketing.providers.adf import markdown_to_adf
from servers.ticketing.providers.jira_comments import comments_page
from servers.ticketing.providers.jira_edits import TOOL_FIELDS, changed_fields, check_read_version, refuse_lossy_description
from servers.ticketing.providers.jira_map import (
    JIRA_LINK_TYPES,
    PRIORITY_FROM_JIRA,
    PRIORITY_TO_JIRA,
    error_text,
    to_comment,
    to_ticket,
    to_transition,
    to_user,
)
from servers.ticketing.providers.jira_query import ORDER, UNFILTERED, jql_instant, jql_string, walk_key, walk_position
from servers.ticketing.providers.jira_status import normalize_status, pick_transition, status_values
from servers.ticketing.providers.created import comment_once, create_marker, create_once, unsure_once
from servers.ticketing.providers.users import one_user

ZONE_TTL_S = 600.0
FIELDS = "summary,description,status,priority,issuetype,labels,assignee,reporter,created,updated,project,issuelinks"


class JiraTicketing:
    name = "jira"
    version_check = ("Jira has no conditional write: checked just before the write (best effort: a change made in the moment "
                     "between is not detected).")

    def __init__(self, base_url: str, http: ProviderHTTP) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._zone: tuple[ZoneInfo, float] | None = None
        self._statuses: tuple[list[dict[str, Any]], float] | None = None
        self._project_types: dict[str, str] = {}

    @classmethod
    def from_env(cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None) -> JiraTicketing:
        """From `JIRA_BASE_URL` and `JIRA_OAUTH_TOKEN` or `JIRA_EMAIL` + `JIRA_API_TOKEN` (the ticketing
        `PROVIDERS` table checks they are set)."""
        base = os.environ["JIRA_BASE_URL"]
        token = os.environ.get("JIRA_OAUTH_TOKEN")
        credentials = Bearer(token) if token else Basic(os.environ["JIRA_EMAIL"], os.environ["JIRA_API_TOKEN"])
        http = connect("Jira", base.rstrip("/") + "/rest/api/3", credentials, headers={"Accept": "application/json"},
                       error_text=error_text, transport=transport)
        return cls(base, http)

    # -- reading ---------------------------------------------------------------------------

    def build_jql(self, query: SearchQuery, zone: ZoneInfo, statuses: list[str] | None = None) -> str:
        """JQL for `query`; `zone` is the searching user's zone, the one Jira reads date-times in, and `statuses`
        the JQL values of the statuses `query.status` asks for (`jira_status.status_values`)."""
        if query.native_query:
            return query.native_query
        clauses = []
        if query.project:
            clauses.append(f"project = {jql_string(query.project)}")
        if query.text:
            clauses.append(f"text ~ {jql_string(query.text)}")
        if query.status:
            clauses.append("status in (" + ", ".join(statuses or ['"none"']) + ")")
        if query.assignee:
            clauses.append(f"assignee = {jql_string(query.assignee)}")
        for label in query.labels or []:
            clauses.append(f"labels = {jql_string(label)}")
        if query.priority:
            clauses.append("priority in (" + ", ".join(jql_string(PRIORITY_TO_JIRA[p]) for p in query.priority) + ")")
        if query.type:
            clauses.append(f"issuetype = {jql_string(query.type)}")
        if query.updated_since:
            clauses.append(f'updated >= "{jql_instant(query.updated_since, zone)}"')
        return " AND ".join(clauses or [UNFILTERED]) + ORDER

    async def all_statuses(self) -> list[dict[str, Any]]:
        """Every status of this Jira (`GET /status`: id, name, statusCategory), kept for ZONE_TTL_S so a status
        an admin adds is seen within minutes."""
        if self._statuses is None or time.monotonic() - self._statuses[1] >= ZONE_TTL_S:
            self._statuses = (list(await self.http.json("GET", "/status")), time.monotonic())
        return self._statuses[0]

    async def search_zone(self) -> ZoneInfo:
        """The zone Jira reads this user's JQL date-times in: the profile's `timeZone` from `GET /myself`
        (kept for ZONE_TTL_S, so a profile change is seen within minutes)."""
        if self._zone is not None and time.monotonic() - self._zone[1] < ZONE_TTL_S:
            return self._zone[0]
        name = (await self.http.json("GET", "/myself")).get("timeZone")
        try:
            zone = ZoneInfo(str(name))
        except (ValueError, ZoneInfoNotFoundError):
            raise DomainError("upstream_error", f"Jira did not give the API user's time zone (GET /myself timeZone: {str(name)[:40]!r}), "
                              "which updated_since needs; set a time zone in that user's Jira profile, or search without "
                              "updated_since") from None
        self._zone = (zone, time.monotonic())
        return zone

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> TicketPage:
        state = decode_cursor(cursor)
        zone = await self.search_zone() if query.updated_since and not query.native_query else ZoneInfo("UTC")
        statuses = None
        if query.status and not query.native_query:
            statuses = status_values(await self.all_statuses(), set(query.status))
            if not statuses:  # no status of this Jira reads so: nothing matches
                return TicketPage(tickets=[])
        params: dict[str, Any] = {"jql": self.build_jql(query, zone, statuses), "maxResults": limit, "fields": FIELDS}
        if token := state.get("next_page_token", ""):  # a str, or invalid_argument (typed get)
            params["nextPageToken"] = token
        body = await self.http.json("GET", "/search/jql", params=params)
        issues = body.get("issues", [])
        after = walk_position(state.get("after")) if state.get("after") and not query.native_query else None
        shown = [i for i in issues if after is None or walk_key(i) < after]  # already shown: a token that moved back
        next_token = body.get("nextPageToken")
        done = body.get("isLast", next_token is None) or not next_token
        last = list(walk_key(issues[-1])) if issues and not query.native_query else None
        if after is not None and last is not None and tuple(last) > after:
            last = list(after)
        next_cursor = None if done else encode_cursor({"next_page_token": next_token, **({"after": last} if last else {})})
        return TicketPage(tickets=[to_ticket(i, [], self.base_url) for i in shown], next_cursor=next_cursor)

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket:
        params: dict[str, Any] = {"fields": FIELDS + (",comment" if "comments" in include else "")}
        if "transitions" in include:
            params["expand"] = "transitions"
        issue = await self.http.json("GET", f"/issue/{ticket_id}", params=params)
        return to_ticket(issue, include, self.base_url)

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage:
        """Oldest first; a walk neither repeats nor drops a comment when others are added or deleted between
        pages (`jira_comments`: Jira pages comments by offset only)."""
        return await comments_page(self.http, ticket_id, limit, cursor, to_comment)

    async def metadata(self, project: str | None, ticket_id: str | None) -> Metadata:
        priorities = await self.http.json("GET", "/priority")
        names = sorted({PRIORITY_FROM_JIRA.get(p["name"].lower(), "medium") for p in priorities})
        types: list[str] = []
        native: dict[str, Status] = {}
        if project:
            info = await self.http.json("GET", f"/project/{project}")
            types = [t["name"] for t in info.get("issueTypes", [])]
            for issue_type in await self.http.json("GET", f"/project/{project}/statuses"):
                for status in issue_type.get("statuses", []):
                    native[status["name"]] = normalize_status(status)
        transitions = await self._transitions(ticket_id) if ticket_id else None
        return Metadata(native_statuses=native, transitions=transitions, types=types, priorities=names,  # type: ignore[arg-type]
                        required_fields=["project", "title", "type"])

    async def find_users(self, query: str, limit: int) -> list[User]:
        users = await self.http.json("GET", "/user/search", params={"query": query, "maxResults": limit})
        return [to_user(u) for u in users if u.get("accountType", "atlassian") == "atlassian"]

    # -- writing ---------------------------------------------------------------------------

    async def create(self, ticket: NewTicket, idempotency_key: str | None = None) -> Ticket:
        """Created once: the issue carries a marker label, looked up after an unclear answer (and before a
        keyed create posts), so a 504 after Jira stored it never makes a second issue (`providers.created`)."""
        marker = create_marker(idempotency_key)
        fields: dict[str, Any] = {
            "project": {"key": ticket.project},
            "summary": ticket.title,
            "issuetype": {"name": ticket.type.capitalize() if ticket.type.islower() else ticket.type},
            "labels": [*ticket.labels, marker],
        }
        if ticket.description:
            fields["description"] = markdown_to_adf(ticket.description)
        if ticket.priority:
            fields["priority"] = {"name": PRIORITY_TO_JIRA[ticket.priority]}
        if ticket.assignee:
            fields["assignee"] = {"accountId": await self._account_id(ticket.assignee)}

        async def post() -> str:
            try:
                return await self._post_issue(fields)
            except DomainError as exc:  # a create screen without Labels refuses the marker (nothing was made)
                if exc.body.code != "invalid_argument" or "labels" not in exc.body.message.lower() or ticket.labels:
                    raise
            unmarked = {**fields, "labels": []}
            return await unsure_once("Jira", f"the create in {ticket.project}", f"search_tickets in {ticket.project} for "
                                     f"{ticket.title[:60]!r} shows whether it exists", lambda: self._post_issue(unmarked))

        async def find() -> str | None:
            body = await self.http.json("GET", "/search/jql", params={
                "jql": f"project = {jql_string(ticket.project)} AND labels = {jql_string(marker)}", "maxResults": 5,
                "fields": "labels"})
            return next((str(i["key"]) for i in body.get("issues", []) if marker in ((i.get("fields") or {}).get("labels") or [])), None)

        key = await create_once("Jira", marker, post, find, keyed=idempotency_key is not None)
        return await self.get(key, [])

    async def _post_issue(self, fields: dict[str, Any]) -> str:
        return str((await self.http.json("POST", "/issue", json={"fields": fields}))["key"])

    async def _account_id(self, who: str) -> str:
        """The accountId for `who`: an email is looked up with `/user/search` (Jira takes only accountIds)."""
        if not is_email(who):
            return who
        return one_user(who, await self.find_users(who, 20), "Jira").id

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket:
        """Write only the fields whose value differs from the issue's (`jira_edits.changed_fields`): with none left,
        the issue is answered as read, whatever `expected_version` says (outside review r38b #2, #8)."""
        issue = await self.http.json("GET", f"/issue/{ticket_id}", params={"fields": FIELDS})
        current = to_ticket(issue, [], self.base_url)
        fields = await changed_fields(current, patch.model_dump(exclude_unset=True), self._account_id)
        if not fields:
            current.changed = []
            return current
        check_read_version(ticket_id, current, expected_version)
        if "description" in fields:  # checked only when it would be replaced
            refuse_lossy_description(ticket_id, (issue.get("fields") or {}).get("description"))
        await self.http.request("PUT", f"/issue/{ticket_id}", json={"fields": fields})
        ticket = await self.get(ticket_id, [])
        ticket.changed = sorted(TOOL_FIELDS[name] for name in fields)
        return ticket

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Ticket:
        """Take the transition `to` names. An issue already there (its status by name, the status the chosen move
        leads to, or one of that kind when no move leads there) is answered as read, whatever `expected_version`
        says: an agent's retry of a move that landed (outside review r38b #2). A transition that leads elsewhere
        is always taken first: "In Review" is in_progress too, and a move from it to "In Progress" once answered
        success with nothing moved (re-check 19 #1)."""
        current = await self.get(ticket_id, [])
        if same_name(to, current.native_status):
            return current
        transitions = await self._transitions(ticket_id)
        match = pick_transition(ticket_id, to, transitions)
        if match is not None and same_name(match.native_to, current.native_status) or (
                match is None and current.status == name_key(to)):
            return current
        check_read_version(ticket_id, current, expected_version)
        if match is None:
            allowed = [f"{t.name} (→ {t.native_to})" for t in transitions]
            raise DomainError(
                "conflict",
                f"{ticket_id} cannot move to {to!r} from its current status; allowed: {', '.join(allowed) or 'none'}",
                details={"allowed": [t.name for t in transitions]},
            )
        await self.http.request("POST", f"/issue/{ticket_id}/transitions", json={"transition": {"id": match.id}})
        return await self.get(ticket_id, [])

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment:
        """An internal note (`public` False) is Jira Service Management's internal comment (`sd.public.comment`)
        on a service project. Elsewhere that property means nothing and the comment would be readable by all
        who browse the project (outside review domains26 #5), so it is restricted to the project role named by
        `JIRA_INTERNAL_COMMENT_ROLE` (comment `visibility`), or refused when none is configured."""
        payload: dict[str, Any] = {"body": markdown_to_adf(body)}
        if not public:
            if await self._project_type(ticket_id) == "service_desk":
                payload["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
            elif role := os.environ.get("JIRA_INTERNAL_COMMENT_ROLE", "").strip():
                payload["visibility"] = {"type": "role", "value": role}
            else:
                raise DomainError(
                    "invalid_argument",
                    f"{ticket_id} is not in a Jira Service Management project, where internal notes exist: a comment there is "
                    "visible to everyone who can browse the project, so nothing was posted. Post it with public=true if "
                    "everyone may read it; an administrator can set JIRA_INTERNAL_COMMENT_ROLE to a project role (e.g. "
                    "Administrators) to restrict such notes to that role",
                    details={"field": "public"})
        return to_comment(await comment_once("Jira", ticket_id, lambda: self.http.json("POST", f"/issue/{ticket_id}/comment",
                                                                                          json=payload)))

    async def _project_type(self, ticket_id: str) -> str:
        """The issue's project's `projectTypeKey` (software, service_desk, business), read once per project."""
        project = ticket_id.rpartition("-")[0] if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+", ticket_id) else None
        if project is None:
            issue = await self.http.json("GET", f"/issue/{ticket_id}", params={"fields": "project"})
            project = str(((issue.get("fields") or {}).get("project") or {}).get("key", ""))
        project = project.upper()
        if project not in self._project_types:
            info = await self.http.json("GET", f"/project/{project}")
            self._project_types[project] = str(info.get("projectTypeKey") or "")
        return self._project_types[project]

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Link:
        """`ticket_id <outward phrase> other_id`. On Jira Cloud the *inwardIssue* of `POST /issueLink` is the
        issue the outward phrase belongs to ({Blocks, inwardIssue A, outwardIssue B} reads "A blocks B";
        outside review domains18 #1, mozilla/jira-bugzilla-integration#1285), so `ticket_id` goes in
        `inwardIssue`. An inward spelling ("is blocked by") swaps the two; other names are Jira's own types."""
        known = LINK_TYPES.get(" ".join(link_type.lower().split()))
        name, reverse = (JIRA_LINK_TYPES[known[0]], known[1]) if known else (link_type, False)
        source, target = (other_id, ticket_id) if reverse else (ticket_id, other_id)
        await self.http.request(
            "POST", "/issueLink", json={"type": {"name": name}, "inwardIssue": {"key": source}, "outwardIssue": {"key": target}},
            idempotent=True,
        )
        return Link(type=known[0] if known else link_type, direction="inward" if reverse else "outward", ticket=other_id)

    async def delete(self, ticket_id: str) -> None:
        await self.http.request("DELETE", f"/issue/{ticket_id}")

    # -- mapping ---------------------------------------------------------------------------

    async def _transitions(self, ticket_id: str) -> list[Transition]:
        body = await self.http.json("GET", f"/issue/{ticket_id}/transitions")
        return [to_transition(t) for t in body.get("transitions", [])]
