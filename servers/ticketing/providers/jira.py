"""Jira Cloud (REST v3) as a ticketing backend.

Configuration: `JIRA_BASE_URL` (https://<site>.atlassian.net) and either `JIRA_EMAIL` +
`JIRA_API_TOKEN` (Basic) or `JIRA_OAUTH_TOKEN` (bearer). Search uses `/rest/api/3/search/jql`
with `nextPageToken`; descriptions and comments are Atlassian Document Format, converted from and
to markdown. Statuses are normalized from the status category (To Do → open, In Progress →
in_progress, Done → resolved, or closed when the status is named Closed; names with hold/blocked/
waiting → on_hold); the native name is kept. Jira has no version token, so `expected_version` is
checked against the issue's `updated` time just before the write (best effort), for updates and
transitions. Jira assigns by accountId only: an assignee given as an email is looked up with
`/user/search` first (`servers.ticketing.providers.users.one_user`).
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from servers.kit.credentials import Basic, Bearer, connect
from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP, common_error_text
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
from servers.ticketing.providers.adf import adf_to_markdown, markdown_to_adf
from servers.ticketing.providers.users import one_user

ZONE_TTL_S = 600.0
FIELDS = "summary,description,status,priority,issuetype,labels,assignee,reporter,created,updated,project,issuelinks"
PRIORITY_TO_JIRA = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}
PRIORITY_FROM_JIRA = {"highest": "critical", "high": "high", "medium": "medium", "low": "low", "lowest": "low"}
JIRA_LINK_TYPES = {"blocks": "Blocks", "relates to": "Relates", "duplicates": "Duplicate"}
CATEGORY_FOR_STATUS = {"open": "To Do", "in_progress": "In Progress", "on_hold": "In Progress", "resolved": "Done", "closed": "Done"}


def normalize_status(status: dict[str, Any]) -> Status:
    name = str(status.get("name", "")).lower()
    category = str((status.get("statusCategory") or {}).get("key", "new"))
    if any(word in name for word in ("hold", "blocked", "waiting")):
        return "on_hold"
    if category == "done":
        return "closed" if "closed" in name else "resolved"
    return "in_progress" if category == "indeterminate" else "open"


def error_text(body: dict[str, Any]) -> list[str]:
    """Jira's error shape: `errorMessages` (a list) and `errors` (field -> message)."""
    errors = body.get("errors")
    fields = [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else []
    return [*(body.get("errorMessages") or []), *fields, *common_error_text(body)]


def jql_instant(instant: datetime, zone: ZoneInfo) -> str:
    """`instant` as a JQL date-time literal Jira reads back as that instant.

    JQL date-times ("yyyy-MM-dd HH:mm") carry no zone: Jira reads them in the time zone of the user
    running the search, from their profile (outside review domains18 #6: a UTC wall-clock time sent for a
    Los Angeles user was read 8 h late). Decision: write the instant as wall-clock time in that user's
    zone (`GET /myself` `timeZone`). Rejected: relative forms ("-90m") drift with the clock between the
    pages of one walk, and epoch milliseconds are not a documented JQL form. JQL has minute precision, so
    the instant is floored to its minute: up to 59 s earlier is included, nothing later is missed. A wall
    time repeated when clocks go back is written so that either reading of it is not after the instant."""
    local = instant.astimezone(zone)
    second = local.replace(fold=1)
    if local.fold == 0 and second.utcoffset() != local.utcoffset():  # the first of two readings: step back
        local = (instant - (local.utcoffset() - second.utcoffset())).astimezone(zone)  # type: ignore[operator]
    return local.strftime("%Y-%m-%d %H:%M")


def _jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JiraTicketing:
    name = "jira"

    def __init__(self, base_url: str, http: ProviderHTTP) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._zone: tuple[ZoneInfo, float] | None = None

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

    def build_jql(self, query: SearchQuery, zone: ZoneInfo) -> str:
        """JQL for `query`; `zone` is the searching user's zone, the one Jira reads date-times in."""
        if query.native_query:
            return query.native_query
        clauses = []
        if query.project:
            clauses.append(f"project = {_jql_string(query.project)}")
        if query.text:
            clauses.append(f"text ~ {_jql_string(query.text)}")
        if query.status:
            categories = sorted({CATEGORY_FOR_STATUS[s] for s in query.status})
            clauses.append("statusCategory in (" + ", ".join(_jql_string(c) for c in categories) + ")")
        if query.assignee:
            clauses.append(f"assignee = {_jql_string(query.assignee)}")
        for label in query.labels or []:
            clauses.append(f"labels = {_jql_string(label)}")
        if query.priority:
            clauses.append("priority in (" + ", ".join(_jql_string(PRIORITY_TO_JIRA[p]) for p in query.priority) + ")")
        if query.type:
            clauses.append(f"issuetype = {_jql_string(query.type)}")
        if query.updated_since:
            clauses.append(f'updated >= "{jql_instant(query.updated_since, zone)}"')
        return " AND ".join(clauses) + " ORDER BY updated DESC"

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
        params: dict[str, Any] = {"jql": self.build_jql(query, zone), "maxResults": limit, "fields": FIELDS}
        if token := state.get("next_page_token"):
            params["nextPageToken"] = token
        body = await self.http.json("GET", "/search/jql", params=params)
        tickets = [self._ticket(issue, []) for issue in body.get("issues", [])]
        next_token = body.get("nextPageToken")
        done = body.get("isLast", next_token is None)
        return TicketPage(tickets=tickets, next_cursor=None if done or not next_token else encode_cursor({"next_page_token": next_token}))

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket:
        params: dict[str, Any] = {"fields": FIELDS + (",comment" if "comments" in include else "")}
        if "transitions" in include:
            params["expand"] = "transitions"
        issue = await self.http.json("GET", f"/issue/{ticket_id}", params=params)
        return self._ticket(issue, include)

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage:
        start = int(decode_cursor(cursor).get("start_at", 0))
        body = await self.http.json("GET", f"/issue/{ticket_id}/comment", params={"startAt": start, "maxResults": limit})
        comments = [self._comment(c) for c in body.get("comments", [])]
        end = start + len(comments)
        more = end < int(body.get("total", end))
        return CommentPage(comments=comments, next_cursor=encode_cursor({"start_at": end}) if more and comments else None)

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
        return [self._user(u) for u in users if u.get("accountType", "atlassian") == "atlassian"]

    # -- writing ---------------------------------------------------------------------------

    async def create(self, ticket: NewTicket) -> Ticket:
        fields: dict[str, Any] = {
            "project": {"key": ticket.project},
            "summary": ticket.title,
            "issuetype": {"name": ticket.type.capitalize() if ticket.type.islower() else ticket.type},
            "labels": ticket.labels,
        }
        if ticket.description:
            fields["description"] = markdown_to_adf(ticket.description)
        if ticket.priority:
            fields["priority"] = {"name": PRIORITY_TO_JIRA[ticket.priority]}
        if ticket.assignee:
            fields["assignee"] = {"accountId": await self._account_id(ticket.assignee)}
        created = await self.http.json("POST", "/issue", json={"fields": fields})
        return await self.get(created["key"], [])

    async def _check_version(self, ticket_id: str, expected_version: str | None) -> None:
        """`conflict` when the issue's `updated` is not `expected_version` (checked just before the write)."""
        if expected_version is not None:
            current = await self.get(ticket_id, [])
            if current.version != expected_version:
                raise DomainError(
                    "conflict",
                    f"{ticket_id} changed since you read it (updated {current.version}); get it again and reapply",
                    details={"current_version": current.version},
                )

    async def _account_id(self, who: str) -> str:
        """The accountId for `who`: an email is looked up with `/user/search` (Jira takes only accountIds)."""
        if not is_email(who):
            return who
        return one_user(who, await self.find_users(who, 20), "Jira").id

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket:
        await self._check_version(ticket_id, expected_version)
        fields: dict[str, Any] = {}
        changes = patch.model_dump(exclude_unset=True)
        if "title" in changes:
            fields["summary"] = changes["title"]
        if "description" in changes:
            fields["description"] = markdown_to_adf(changes["description"] or "")
        if "priority" in changes:
            fields["priority"] = {"name": PRIORITY_TO_JIRA[changes["priority"]]}
        if "labels" in changes:
            fields["labels"] = changes["labels"]
        if "assignee" in changes:
            fields["assignee"] = {"accountId": await self._account_id(changes["assignee"])} if changes["assignee"] else None
        if "type" in changes:
            fields["issuetype"] = {"name": changes["type"]}
        await self.http.request("PUT", f"/issue/{ticket_id}", json={"fields": fields})
        return await self.get(ticket_id, [])

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Ticket:
        await self._check_version(ticket_id, expected_version)
        transitions = await self._transitions(ticket_id)
        match = next((t for t in transitions if same_name(to, t.name) or same_name(to, t.native_to)), None)
        match = match or next((t for t in transitions if t.to_status == name_key(to)), None)
        if match is None:
            # No move leads there: if the issue is there already (its status, or a status of that kind when
            # no transition offers another), nothing is written — an agent's retry of a move that landed.
            # A transition that leads there is always taken first: "In Review" is in_progress too, and a
            # move from it to "In Progress" once answered success with nothing moved (re-check 19 #1).
            current = await self.get(ticket_id, [])
            if same_name(to, current.native_status) or current.status == name_key(to):
                return current
            allowed = [f"{t.name} (→ {t.native_to})" for t in transitions]
            raise DomainError(
                "conflict",
                f"{ticket_id} cannot move to {to!r} from its current status; allowed: {', '.join(allowed) or 'none'}",
                details={"allowed": [t.name for t in transitions]},
            )
        await self.http.request("POST", f"/issue/{ticket_id}/transitions", json={"transition": {"id": match.id}})
        return await self.get(ticket_id, [])

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment:
        payload: dict[str, Any] = {"body": markdown_to_adf(body)}
        if not public:
            payload["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
        return self._comment(await self.http.json("POST", f"/issue/{ticket_id}/comment", json=payload))

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
        return [self._transition(t) for t in body.get("transitions", [])]

    @staticmethod
    def _transition(raw: dict[str, Any]) -> Transition:
        target = raw.get("to") or {}
        return Transition(id=str(raw["id"]), name=raw["name"], to_status=normalize_status(target), native_to=target.get("name", raw["name"]))

    @staticmethod
    def _user(raw: dict[str, Any] | None) -> User | None:
        if not raw:
            return None
        return User(id=raw.get("accountId", ""), name=raw.get("displayName", ""), email=raw.get("emailAddress"))

    def _comment(self, raw: dict[str, Any]) -> Comment:
        internal = any(
            p.get("key") == "sd.public.comment" and (p.get("value") or {}).get("internal") for p in raw.get("properties", [])
        )
        author = self._user(raw.get("author"))
        return Comment(id=str(raw["id"]), author=author.name if author else None, body=adf_to_markdown(raw.get("body")),
                       public=not internal, created_at=_time(raw["created"]))

    def _ticket(self, issue: dict[str, Any], include: list[Include]) -> Ticket:
        fields = issue.get("fields") or {}
        status = fields.get("status") or {}
        priority = (fields.get("priority") or {}).get("name")
        ticket = Ticket(
            id=issue["key"], provider="jira", remote_id=str(issue["id"]), key=issue["key"],
            project=(fields.get("project") or {}).get("key", issue["key"].split("-")[0]),
            title=fields.get("summary", ""), description=adf_to_markdown(fields.get("description")),
            status=normalize_status(status), native_status=status.get("name", ""),
            priority=PRIORITY_FROM_JIRA.get(priority.lower()) if priority else None,  # type: ignore[arg-type]
            type=(fields.get("issuetype") or {}).get("name", "Task"), labels=fields.get("labels") or [],
            assignee=self._user(fields.get("assignee")), reporter=self._user(fields.get("reporter")),
            created_at=_time(fields["created"]), updated_at=_time(fields["updated"]),
            url=f"{self.base_url}/browse/{issue['key']}", version=fields["updated"],
        )
        if "comments" in include:
            ticket.comments = [self._comment(c) for c in (fields.get("comment") or {}).get("comments", [])]
        if "transitions" in include:
            ticket.transitions = [self._transition(t) for t in issue.get("transitions", [])]
        if "links" in include:
            ticket.links = []
            for link in fields.get("issuelinks") or []:
                if "outwardIssue" in link:
                    ticket.links.append(Link(type=link["type"]["outward"], direction="outward", ticket=link["outwardIssue"]["key"]))
                if "inwardIssue" in link:
                    ticket.links.append(Link(type=link["type"]["inward"], direction="inward", ticket=link["inwardIssue"]["key"]))
        if "raw" in include:
            ticket.raw = issue
        return ticket


def _time(value: str) -> datetime:
    """Jira writes `2026-11-23T10:00:00.000+0000`; Python wants the offset with a colon."""
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    return datetime.fromisoformat(value)
