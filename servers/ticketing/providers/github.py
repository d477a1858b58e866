"""GitHub Issues as a ticketing backend.

Configuration: `GITHUB_REPO` (owner/name, the default project) and `GITHUB_TOKEN`;
`GITHUB_API_URL` overrides https://api.github.com (GitHub Enterprise). The API version header is
pinned. Lists follow the `Link` header; pull requests, which the issues endpoint also returns,
are dropped. Text and native queries use `/search/issues`, which GitHub caps at 1,000 results
(`truncated` says so). GitHub issues are open or closed: `resolved` closes as completed, `closed`
as not planned; in_progress/on_hold do not exist there (a search by status asks GitHub for the close
reason too, `reason:completed`, and keeps only the statuses asked for). `updated_since` is sent as the
exact UTC instant (`since=` on lists, `updated:>=…T…Z` in search). Priority is read from and written to a
`priority: <level>` label, the type to a label too (`update_ticket` changes it only with the full
new `labels`: which label was the old type cannot be told). GitHub has no internal comments, no issue
links (a link is written once as a cross-reference comment, which GitHub shows on both issues; a
repeated link finds it and posts nothing) and no deletion over REST.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from servers.kit.credentials import Bearer, connect
from servers.kit.cursor import decode_cursor, encode_cursor, next_link
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP, common_error_text
from servers.ticketing.model import (
    Comment,
    CommentPage,
    Include,
    Link,
    Metadata,
    NewTicket,
    SearchQuery,
    Ticket,
    TicketPage,
    TicketPatch,
    Transition,
    User,
)
from servers.ticketing.normal import fold, name_key
from servers.ticketing.providers.users import github_login as _login

API_VERSION = "2022-11-28"
SEARCH_CAP = 1000
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
_PRIORITY = re.compile(r"^priority:\s*(critical|high|medium|low)$", re.I)
_OPEN = {"open", "in_progress", "on_hold"}


def instant(when: datetime) -> str:
    """`when` as GitHub takes a time (`since`, `updated:>=`): ISO 8601 in UTC to the second, floored so
    an issue updated in that second is kept; a naive value is taken as UTC."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_terms(statuses: set[str]) -> tuple[list[str], bool]:
    """Search qualifiers that narrow a search to `statuses` (resolved = closed as completed, closed =
    closed any other way: not planned, duplicate, or before GitHub kept reasons), and whether they
    select exactly those (only `resolved` has a qualifier of its own, `reason:completed`); the results
    are filtered by status afterwards either way, and GitHub's count is the total only when exact."""
    if statuses <= _OPEN:
        return ["is:open"], "open" in statuses
    if statuses == {"resolved"}:
        return ["is:closed", "reason:completed"], True
    if statuses <= {"resolved", "closed"}:
        return ["is:closed"], statuses == {"resolved", "closed"}
    return [], {"open", "resolved", "closed"} <= statuses


def error_text(body: dict[str, Any]) -> list[str]:
    """GitHub's error shape: `message`, and `errors` (a list of {resource, field, code, message?})."""
    details = [e.get("message") or " ".join(str(e[k]) for k in ("field", "code") if e.get(k))
               for e in body.get("errors") or [] if isinstance(e, dict)]
    return [*common_error_text(body), *details]


class GitHubTicketing:
    name = "github"

    def __init__(self, repo: str, http: ProviderHTTP, api: str = "https://api.github.com") -> None:
        self.repo = repo
        self.http = http
        self.api = api.rstrip("/")

    @classmethod
    def from_env(cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None) -> GitHubTicketing:
        """From `GITHUB_REPO` (owner/name) and `GITHUB_TOKEN` (the ticketing `PROVIDERS` table checks both)."""
        repo = os.environ["GITHUB_REPO"]
        if "/" not in repo:
            raise ValueError("GITHUB_REPO must be owner/name, e.g. octo-org/octo-repo")
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        return cls(repo, connect("GitHub", api, Bearer(os.environ["GITHUB_TOKEN"]), headers=headers, error_text=error_text,
                                 transport=transport), api)

    def _repo(self, project: str | None) -> str:
        if project and project != self.repo and "/" in project:
            return project
        return self.repo

    @staticmethod
    def _number(ticket_id: str) -> tuple[str | None, str]:
        """`owner/repo#12`, `#12` or `12` → (repo or None, number)."""
        repo, _, number = ticket_id.rpartition("#")
        number = number.strip()
        if not (number.isascii() and number.isdigit()):
            raise DomainError("invalid_argument", f"{ticket_id!r} is not a GitHub issue id: use 42, #42 or owner/repo#42")
        return (repo or None), number

    def _path(self, ticket_id: str) -> str:
        repo, number = self._number(ticket_id)
        return f"/repos/{repo or self.repo}/issues/{number}"

    # -- reading ---------------------------------------------------------------------------

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> TicketPage:
        state = decode_cursor(cursor)
        repo = self._repo(query.project)
        if query.text or query.native_query or query.priority or query.type:
            return await self._search(query, repo, limit, int(state.get("page", 1)))
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "desc", "per_page": min(limit, 100)}
        if query.status:
            states = {"open" if s in ("open", "in_progress", "on_hold") else "closed" for s in query.status}
            params["state"] = states.pop() if len(states) == 1 else "all"
        if query.labels:
            params["labels"] = ",".join(query.labels)
        if query.assignee:
            params["assignee"] = query.assignee
        if query.updated_since:
            params["since"] = instant(query.updated_since)
        next_url = next_link(state, self.api)
        response = await self.http.request("GET", next_url or f"/repos/{repo}/issues", params=None if next_url else params)
        rows = [r for r in response.json() if "pull_request" not in r]
        match = _NEXT.search(response.headers.get("link", ""))
        tickets = [self._ticket(r, repo, []) for r in rows]
        if query.status:
            tickets = [t for t in tickets if t.status in query.status]
        return TicketPage(tickets=tickets, next_cursor=encode_cursor({"next": match.group(1)}) if match else None)

    async def _search(self, query: SearchQuery, repo: str, limit: int, page: int) -> TicketPage:
        terms = [query.native_query] if query.native_query else [f"repo:{repo}", "is:issue"]
        counted = True  # GitHub's total_count is this search's total
        if not query.native_query:
            if query.text:
                terms.append(query.text)
            if query.status:  # resolved vs closed is the close reason (outside review 18, defect 10)
                qualifiers, counted = status_terms(set(query.status))
                terms += qualifiers
            terms += [f'label:"{label}"' for label in query.labels or []]
            terms += [f'label:"priority: {p}"' for p in query.priority or []]
            if query.type:
                terms.append(f'label:"{query.type}"')
            if query.assignee:
                terms.append(f"assignee:{query.assignee}")
            if query.updated_since:  # the instant, not its date in its own offset
                terms.append(f"updated:>={instant(query.updated_since)}")
        per_page = min(limit, 100)
        body = await self.http.json("GET", "/search/issues", params={"q": " ".join(terms), "per_page": per_page, "page": page,
                                                                     "sort": "updated", "order": "desc"})
        items = [r for r in body.get("items", []) if "pull_request" not in r]
        total = int(body.get("total_count", 0))
        reachable = min(total, SEARCH_CAP)
        more = page * per_page < reachable
        tickets = [self._ticket(r, repo, []) for r in items]
        if query.status and not query.native_query:  # as the list path: only the statuses asked for
            tickets = [t for t in tickets if t.status in query.status]
        return TicketPage(tickets=tickets, total=total if counted else None, truncated=total > SEARCH_CAP,
                          next_cursor=encode_cursor({"page": page + 1}) if more else None)

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket:
        repo, _ = self._number(ticket_id)
        raw = await self.http.json("GET", self._path(ticket_id))
        if "pull_request" in raw:
            raise DomainError("not_found", f"{ticket_id} is a pull request, not an issue")
        ticket = self._ticket(raw, repo or self.repo, include)
        if "comments" in include:
            ticket.comments = (await self.list_comments(ticket_id, 100, None)).comments
        return ticket

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage:
        state = decode_cursor(cursor)
        next_url = next_link(state, self.api)
        response = await self.http.request("GET", next_url or self._path(ticket_id) + "/comments",
                                           params=None if next_url else {"per_page": min(limit, 100)})
        match = _NEXT.search(response.headers.get("link", ""))
        comments = [Comment(id=str(c["id"]), author=(c.get("user") or {}).get("login"), body=c.get("body") or "", public=True,
                            created_at=c["created_at"]) for c in response.json()]
        return CommentPage(comments=comments, next_cursor=encode_cursor({"next": match.group(1)}) if match else None)

    async def metadata(self, project: str | None, ticket_id: str | None) -> Metadata:
        labels = await self.http.json("GET", f"/repos/{self._repo(project)}/labels", params={"per_page": 100})
        types = [label["name"] for label in labels if not _PRIORITY.match(label["name"])]
        transitions = None
        if ticket_id:
            transitions = (await self.get(ticket_id, ["transitions"])).transitions
        return Metadata(native_statuses={"open": "open", "closed (completed)": "resolved", "closed (not planned)": "closed"},
                        transitions=transitions, types=types, priorities=["critical", "high", "medium", "low"],
                        required_fields=["title"])

    async def find_users(self, query: str, limit: int) -> list[User]:
        users = await self.http.json("GET", f"/repos/{self.repo}/assignees", params={"per_page": 100})
        wanted = fold(query.strip())
        return [User(id=u["login"], name=u["login"]) for u in users if wanted in fold(u["login"])][:limit]

    # -- writing ---------------------------------------------------------------------------

    async def create(self, ticket: NewTicket) -> Ticket:
        repo = self._repo(ticket.project)
        labels = list(ticket.labels)
        if ticket.priority:
            labels.append(f"priority: {ticket.priority}")
        if ticket.type not in ("task", ""):
            labels.append(ticket.type)
        body: dict[str, Any] = {"title": ticket.title, "body": ticket.description, "labels": labels}
        if ticket.assignee:
            body["assignees"] = [_login(ticket.assignee)]
        raw = await self.http.json("POST", f"/repos/{repo}/issues", json=body)
        return self._ticket(raw, repo, [])

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket:
        current = await self.http.json("GET", self._path(ticket_id))
        if expected_version is not None and current["updated_at"] != expected_version:
            raise DomainError("conflict", f"{ticket_id} changed since you read it (updated {current['updated_at']}); get it again",
                              details={"current_version": current["updated_at"]})
        changes = patch.model_dump(exclude_unset=True)
        body: dict[str, Any] = {}
        if "title" in changes:
            body["title"] = changes["title"]
        if "description" in changes:
            body["body"] = changes["description"]
        if "assignee" in changes:
            body["assignees"] = [_login(changes["assignee"])] if changes["assignee"] else []
        kept = [label["name"] for label in current.get("labels", []) if not _PRIORITY.match(label["name"])]
        if "type" in changes and "labels" not in changes:
            raise DomainError(
                "invalid_argument",
                f"GitHub keeps an issue's type as one of its labels ({', '.join(kept) or 'none now'}) and cannot tell which "
                "one it is: give labels (the full new list, without the old type's label) together with type", details={
                    "field": "type", "labels": kept})
        if "labels" in changes or "priority" in changes:
            labels = list(changes.get("labels", kept))
            kind = changes.get("type") or ""
            if kind not in ("task", "") and fold(kind) not in {fold(label) for label in labels}:
                labels.append(kind)  # the type is a label, as `create` writes it
            priority = changes.get("priority") or next((m.group(1).lower() for label in current.get("labels", [])
                                                        if (m := _PRIORITY.match(label["name"]))), None)
            body["labels"] = labels + ([f"priority: {priority}"] if priority else [])
        repo, _ = self._number(ticket_id)
        raw = await self.http.json("PATCH", self._path(ticket_id), json=body, idempotent=True)
        return self._ticket(raw, repo or self.repo, [])

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Ticket:
        raw = await self.http.json("GET", self._path(ticket_id))
        if expected_version is not None and raw["updated_at"] != expected_version:
            raise DomainError("conflict", f"{ticket_id} changed since you read it (updated {raw['updated_at']}); get it again",
                              details={"current_version": raw["updated_at"]})
        wanted = name_key(to)  # any case, spacing or canonical form (servers.ticketing.normal)
        repo, _ = self._number(ticket_id)
        if (current := self._ticket(raw, repo or self.repo, [])).status == wanted:
            return current  # already there: nothing to write (an agent's retry of a move that landed)
        allowed = [t.to_status for t in self._transitions(raw)]
        if wanted not in allowed:
            raise DomainError("conflict", f"{ticket_id} is {raw['state']} on GitHub and cannot move to {to!r}; allowed: {', '.join(allowed)}",
                              details={"allowed": allowed})
        body = {"state": "open"} if wanted == "open" else {"state": "closed", "state_reason": "completed" if wanted == "resolved" else "not_planned"}
        return self._ticket(await self.http.json("PATCH", self._path(ticket_id), json=body, idempotent=True), repo or self.repo, [])

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment:
        if not public:
            raise DomainError("invalid_argument", "GitHub has no internal comments; everything on an issue is visible to its readers")
        c = await self.http.json("POST", self._path(ticket_id) + "/comments", json={"body": body})
        return Comment(id=str(c["id"]), author=(c.get("user") or {}).get("login"), body=c.get("body", ""), public=True,
                       created_at=c["created_at"])

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Link:
        other_repo, number = self._number(other_id)
        reference = f"{other_repo}#{number}" if other_repo and other_repo != self.repo else f"#{number}"
        text = f"{link_type.capitalize()} {reference}"
        if not await self._has_comment(ticket_id, text):  # a retry finds its comment: the link is written once
            await self.add_comment(ticket_id, text, True)
        return Link(type=link_type, direction="outward", ticket=other_id)

    async def _has_comment(self, ticket_id: str, text: str, max_pages: int = 30) -> bool:
        """Whether the issue already carries a comment reading exactly `text` (its first 3,000 comments)."""
        cursor: str | None = None
        for _ in range(max_pages):
            page = await self.list_comments(ticket_id, 100, cursor)
            if any(c.body.strip() == text for c in page.comments):
                return True
            if not (cursor := page.next_cursor):
                break
        return False

    async def delete(self, ticket_id: str) -> None:
        raise DomainError("invalid_argument", "GitHub's REST API cannot delete issues; close it with transition_ticket(to='closed')")

    # -- mapping ---------------------------------------------------------------------------

    @staticmethod
    def _transitions(raw: dict[str, Any]) -> list[Transition]:
        if raw["state"] == "open":
            return [Transition(id="close-completed", name="Close as completed", to_status="resolved", native_to="closed"),
                    Transition(id="close-not-planned", name="Close as not planned", to_status="closed", native_to="closed")]
        return [Transition(id="reopen", name="Reopen", to_status="open", native_to="open")]

    def _ticket(self, raw: dict[str, Any], repo: str, include: list[Include]) -> Ticket:
        labels = [label["name"] for label in raw.get("labels", [])]
        priority = next((m.group(1).lower() for label in labels if (m := _PRIORITY.match(label))), None)
        closed = raw["state"] == "closed"
        status = ("resolved" if raw.get("state_reason") == "completed" else "closed") if closed else "open"
        user = raw.get("user") or {}
        assignee = (raw.get("assignees") or [raw.get("assignee")] or [None])[0]
        key = f"{repo}#{raw['number']}"
        ticket = Ticket(
            id=key if repo != self.repo else str(raw["number"]), provider="github", remote_id=str(raw["id"]), key=key, project=repo,
            title=raw["title"], description=raw.get("body") or "", status=status,  # type: ignore[arg-type]
            native_status=raw["state"] + (f" ({raw['state_reason']})" if raw.get("state_reason") else ""),
            priority=priority, type="issue", labels=[label for label in labels if not _PRIORITY.match(label)],  # type: ignore[arg-type]
            assignee=User(id=assignee["login"], name=assignee["login"]) if assignee else None,
            reporter=User(id=user["login"], name=user["login"]) if user else None,
            created_at=raw["created_at"], updated_at=raw["updated_at"], url=raw.get("html_url"), version=raw["updated_at"],
        )
        if "transitions" in include:
            ticket.transitions = self._transitions(raw)
        if "raw" in include:
            ticket.raw = raw
        return ticket
