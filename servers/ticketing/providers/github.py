"""GitHub Issues as a ticketing backend.

Configuration: `GITHUB_REPO` (owner/name, the default project) and `GITHUB_TOKEN`; `GITHUB_REPOS`
(optional, comma-separated owner/name) allows more repositories: no id, project, native search or cursor
reaches any other (`github_scope`). `GITHUB_API_URL` overrides https://api.github.com (GitHub
Enterprise). The API version header is pinned. Comments are walked by id (`github_comments`). Lists
are newest created first, paged by the last issue number shown (`github_walk`: nothing is skipped while
the walk closes issues); pull requests, which the issues endpoint also returns, are dropped; GitHub's
shapes are read in `github_map`. A create is settled by a marker in an HTML comment (`providers.created`). Text and native
queries use `/search/issues`, newest created first, each page a search narrowed to `created:<=` the
last issue shown (`_search`: a walk neither repeats nor drops an issue updated or created meanwhile,
and is not held to the 1,000 results one search reaches). GitHub issues are open or closed:
`resolved` closes as completed, `closed` as not planned; in_progress/on_hold do not exist there (a search by status asks GitHub for the close
reason too, `reason:completed`, and keeps only the statuses asked for). `updated_since` is sent as the
exact UTC instant (`since=` on lists, `updated:>=…T…Z` in search). Priority is read from and written to
a `priority: <level>` label (a priority-only update adds and removes just that label), the type to a
label too (`update_ticket` changes it only with the full new `labels`: which label was the old type
cannot be told). GitHub has no internal comments, no issue links (a link is written once as a
cross-reference comment, which GitHub shows on both issues; a repeated link finds it and posts
nothing) and no deletion over REST. An update writes only what differs from the issue (`providers.unchanged`); one
that would change nothing, like a move to the status the issue has, writes nothing and answers the issue as read
whatever `expected_version` says. `expected_version` (the issue's `updated_at`) is compared just
before the write: GitHub has no conditional write for issues, so a change made in that moment is not
detected (the tools say so: `version_check`).
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlsplit
from pathlib import Path
from typing import Any

import httpx

from servers.kit.credentials import Bearer, connect
from servers.kit.cursor import decode_cursor, encode_cursor, next_link
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
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
    User,
)
from servers.ticketing.normal import fold, name_key
from servers.ticketing.providers.github_comments import comments_page
from servers.ticketing.providers.github_edits import issue_edit
from servers.ticketing.providers.github_map import (PRIORITY, error_text, marker_comment, rate_limit, to_comment, to_ticket,
                                                    transitions)
from servers.ticketing.providers.github_scope import RepoScope
from servers.ticketing.providers.github_search import (MAX_SEARCHES, halves, instant, merged, origin, repo_chunks, search_page,
                                                      status_terms, too_long, walk_state)
from servers.ticketing.providers.github_walk import NEXT, list_page
from servers.ticketing.providers.created import comment_once, create_marker, create_once
from servers.ticketing.providers.users import github_login as _login

API_VERSION = "2022-11-28"
_LOGIN = re.compile(r"@?[A-Za-z0-9](?:[A-Za-z0-9_-]{0,99})(?:\[bot\])?")
"""A GitHub login as `assignee:` takes it (EMU logins end in `_shortcode`; `@me`; apps' `name[bot]`)."""


class GitHubTicketing:
    name = "github"
    version_check = ("GitHub has no conditional write: checked just before the write (best effort: a change made in the "
                     "moment between is not detected).")

    def __init__(self, repo: str | RepoScope, http: ProviderHTTP, api: str = "https://api.github.com") -> None:
        self.scope = repo if isinstance(repo, RepoScope) else RepoScope(repo)
        self.repo = self.scope.default
        self.http = http
        self.api = api.rstrip("/")
        self._strict_length = False
        """Set once GitHub refused a search this connector counted as fitting: from then on queries are planned
        counting a space as three (`github_search._fits`), so later pages are not split again (outside review gh31 #1)."""

    @classmethod
    def from_env(cls, data_dir: Path | None = None, transport: httpx.AsyncBaseTransport | None = None) -> GitHubTicketing:
        """From `GITHUB_REPO` (owner/name), `GITHUB_TOKEN` (the ticketing `PROVIDERS` table checks both) and the
        optional `GITHUB_REPOS` (more allowed repositories, `github_scope`)."""
        repo = RepoScope.parse(os.environ["GITHUB_REPO"], os.environ.get("GITHUB_REPOS"))
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        return cls(repo, connect("GitHub", api, Bearer(os.environ["GITHUB_TOKEN"]), headers=headers, error_text=error_text,
                                 rate_limit=rate_limit, transport=transport), api)

    def _repo(self, project: str | None) -> str:
        """The allowed repository `project` names (`github_scope`), else invalid_argument."""
        return self.scope.repo(project)

    def _number(self, ticket_id: str, field: str = "id") -> tuple[str, str]:
        """`owner/repo#12`, `#12` or `12` → (allowed repository, number), else invalid_argument."""
        return self.scope.issue(ticket_id, field)

    def _path(self, ticket_id: str) -> str:
        repo, number = self._number(ticket_id)
        return f"/repos/{repo}/issues/{number}"

    def _own_link(self, state: dict[str, Any], path: str) -> str | None:
        """A GitHub next-page URL kept in an older cursor, taken only when it is `path`'s own next page: a crafted
        one naming another repository is refused (`github_scope`)."""
        if (link := next_link(state, self.api)) is None:
            return None
        if urlsplit(link).path.lower() != (urlsplit(self.api).path.rstrip("/") + path).lower():
            raise DomainError("invalid_argument", "cursor is not one this server issued for this listing: pass next_cursor "
                              "from the previous page unchanged, with the same filters", details={"field": "cursor"})
        return link

    # -- reading ---------------------------------------------------------------------------

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> TicketPage:
        state = decode_cursor(cursor)
        repo = self._repo(query.project)
        if query.text or query.native_query or query.priority or query.type:
            return await self._search(query, repo, limit, state)
        params: dict[str, Any] = {"state": "all", "sort": "created", "direction": "desc"}
        if query.status:
            states = {"open" if s in ("open", "in_progress", "on_hold") else "closed" for s in query.status}
            params["state"] = states.pop() if len(states) == 1 else "all"
        if query.labels:
            params["labels"] = ",".join(query.labels)
        if query.assignee:
            params["assignee"] = query.assignee
        if query.updated_since:
            params["since"] = instant(query.updated_since)
        if next_url := self._own_link(state, f"/repos/{repo}/issues"):  # a cursor made before keyset paging
            response = await self.http.request("GET", next_url)
            match = NEXT.search(response.headers.get("link", ""))
            rows, next_cursor = response.json(), encode_cursor({"next": match.group(1)}) if match else None
        else:
            rows, next_cursor = await list_page(self.http, f"/repos/{repo}/issues", params, limit, state)
        tickets = [self._ticket(r, repo, []) for r in rows if "pull_request" not in r]
        if query.status:
            tickets = [t for t in tickets if t.status in query.status]
        return TicketPage(tickets=tickets, next_cursor=next_cursor)

    async def _search(self, query: SearchQuery, repo: str, limit: int, state: dict[str, Any]) -> TicketPage:
        """One page of `/search/issues`, newest created first, continuing after the last issue shown.

        Page numbers over a search sorted by `updated` shifted under a walk (outside review domains27 #1, the
        sibling of ServiceNow's offsets): an issue updated or created between pages moved the window, so a
        walk repeated one issue and dropped another. Each page is now its own search narrowed to
        `created:<=T` (T: the created time of the last issue shown, to the second, as GitHub keeps it) and
        sorted by `created`; the issues already shown at T, kept in the cursor, are skipped. A walk is thus
        not held to the 1,000 results one search reaches; `total` is GitHub's count when the walk began.
        More than 100 issues created in one second cannot all be reached: the walk goes on below that second
        and the page says `truncated` (`search_page`). Native queries stay in the allowed repositories
        (`github_scope.RepoScope.confine`); each result is labelled with the repository it comes from
        (`github_search.origin`, spelled as configured: one issue, one id), and one from outside the list is dropped;
        a walk that met one reports no total (GitHub's count would include that repository: outside review s28 #2)."""
        if "offset" in state or "page" in state:
            raise DomainError("invalid_argument", "this cursor is from an older page-numbered GitHub search, which could "
                              "repeat or skip issues; start the search again without a cursor")
        if query.native_query:
            repos, rest = self.scope.confine(query.native_query)
            terms = [rest] if rest else []
        else:  # built by the connector: the caller's values are checked or quoted (github_scope, outside review s28 #2, #6)
            named, text = self.scope.text_terms(query.text) if query.text else ([], "")
            repos, terms = list(dict.fromkeys([repo, *named])), ["is:issue", *([text] if text else [])]
        counted = True  # GitHub's total_count is this search's total
        if not query.native_query:
            if query.status:  # resolved vs closed is the close reason (outside review 18, defect 10)
                qualifiers, counted = status_terms(set(query.status))
                terms += qualifiers
            terms += [self.scope.label_term("label", label, "labels") for label in query.labels or []]
            terms += [f'label:"priority: {p}"' for p in query.priority or []]
            if query.type:
                terms.append(self.scope.label_term("label", query.type, "type"))
            if query.assignee:
                if not _LOGIN.fullmatch(query.assignee):
                    raise DomainError("invalid_argument", f"assignee {query.assignee[:100]!r} is not a GitHub login (letters, "
                                      "digits, - and _, no spaces or colons): pass the login, as find_users returns it",
                                      details={"field": "assignee"})
                terms.append(f"assignee:{query.assignee}")
            if query.updated_since:  # the instant, not its date in its own offset
                terms.append(f"updated:>={instant(query.updated_since)}")
        before, seen, below, total = walk_state(state)
        truncated = bool(state.get("truncated", False))
        foreign = state.get("foreign", False) is True  # a result from outside the list was seen: GitHub's count is not ours
        taken: list[dict[str, Any]] = []
        after: dict[str, Any] | None = None
        shorten = "native_query" if query.native_query else "text or the filters (labels, type, priority, assignee)" \
            if query.text else "labels (or type, priority, assignee)"
        searches = repo_chunks(repos, terms, shorten, self._strict_length)
        for _ in range(2):  # a second stuck at `before` is stepped below at once (search_page)
            created = [f"created:{'<' if below else '<='}{before}"] if before else []
            items, count, incomplete = await self._search_all(searches, created, min(100, limit + len(seen)), shorten)
            total = count if total is None else total
            foreign = foreign or any(self.scope.canonical(origin(r, repo)) is None for r in items)
            taken, after, passed = search_page(items, count, before, seen, limit, below)
            # GitHub's search timed out and answered what it had found: issues may be missing from this page, and
            # the walk goes on below the last one shown, so it says so rather than passing them over in silence
            truncated = truncated or passed or incomplete
            if not passed or after is None:
                break
            before, seen, below = after["before"], set(), True
        tickets = [self._ticket(r, source, []) for r in taken  # never a repository outside the list, as configured
                   if "pull_request" not in r and (source := self.scope.canonical(origin(r, repo))) is not None]
        if query.status and not query.native_query:  # as the list path: only the statuses asked for
            tickets = [t for t in tickets if t.status in query.status]
        flags = {**({"truncated": True} if truncated else {}), **({"foreign": True} if foreign else {})}
        next_cursor = encode_cursor({**after, "total": total, **flags}) if after else None
        return TicketPage(tickets=tickets, total=total if counted and not foreign else None, next_cursor=next_cursor,
                          truncated=truncated)

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket:
        repo, _ = self._number(ticket_id)
        raw = await self.http.json("GET", self._path(ticket_id))
        if "pull_request" in raw:
            raise DomainError("not_found", f"{ticket_id} is a pull request, not an issue")
        ticket = self._ticket(raw, repo, include)
        if "comments" in include:
            ticket.comments = (await self.list_comments(ticket_id, 100, None)).comments
        return ticket

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage:
        """Oldest first; stable while comments are added or deleted between pages (`github_comments`)."""
        return await comments_page(self.http, self._path(ticket_id) + "/comments", limit, cursor, to_comment)

    async def metadata(self, project: str | None, ticket_id: str | None) -> Metadata:
        labels = await self.http.json("GET", f"/repos/{self._repo(project)}/labels", params={"per_page": 100})
        types = [label["name"] for label in labels if not PRIORITY.match(label["name"])]
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

    async def create(self, ticket: NewTicket, idempotency_key: str | None = None) -> Ticket:
        """Created once: the body ends with an HTML comment naming a marker (not rendered, and not shown in
        the description read back), looked up among the newest issues after an unclear answer (and before a
        keyed create posts): a 502 after GitHub stored the issue never makes a second one (`providers.created`)."""
        repo = self._repo(ticket.project)
        marker = create_marker(idempotency_key)
        labels = list(ticket.labels)
        if ticket.priority:
            labels.append(f"priority: {ticket.priority}")
        if ticket.type not in ("task", ""):
            labels.append(ticket.type)
        body: dict[str, Any] = {"title": ticket.title, "body": ticket.description + marker_comment(marker), "labels": labels}
        if ticket.assignee:
            body["assignees"] = [_login(ticket.assignee)]

        async def post() -> dict[str, Any]:
            return await self.http.json("POST", f"/repos/{repo}/issues", json=body)  # type: ignore[no-any-return]

        async def find() -> dict[str, Any] | None:
            """The newest issues (not the search index, which lags), newest first: the marker's issue is among them."""
            rows = await self.http.json("GET", f"/repos/{repo}/issues", params={
                "state": "all", "sort": "created", "direction": "desc", "per_page": 50})
            return next((r for r in rows if marker_comment(marker) in (r.get("body") or "")), None)

        raw = await create_once("GitHub", marker, post, find, keyed=idempotency_key is not None)
        return self._ticket(raw, repo, [])

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket:
        """Write only what differs from the issue read (`github_edits.issue_edit`): with nothing left, the issue is
        answered as read, whatever `expected_version` says (outside review r38b #2, #8)."""
        current = await self.http.json("GET", self._path(ticket_id))
        repo, _ = self._number(ticket_id)
        read = self._ticket(current, repo, [])
        edit = issue_edit(current, read, patch.model_dump(exclude_unset=True))
        if not edit.changed:
            read.changed = []
            return read
        if expected_version is not None and current["updated_at"] != expected_version:
            raise DomainError("conflict", f"{ticket_id} changed since you read it (updated {current['updated_at']}); get it again",
                              details={"current_version": current["updated_at"]})
        raw = await self.http.json("PATCH", self._path(ticket_id), json=edit.body, idempotent=True) if edit.body else current
        if edit.priority:
            raw = await self._set_priority(ticket_id, edit.priority, current)
        ticket = self._ticket(raw, repo, [])
        ticket.changed = sorted(edit.changed)
        return ticket

    async def _set_priority(self, ticket_id: str, priority: str, current: dict[str, Any]) -> dict[str, Any]:
        """Change only the `priority: …` label, with GitHub's add-labels and remove-a-label endpoints: a PATCH of the
        whole list read earlier would drop a label another caller added meanwhile (outside review domains26 #6)."""
        wanted = f"priority: {priority}"
        await self.http.request("POST", self._path(ticket_id) + "/labels", json={"labels": [wanted]}, idempotent=True)
        for label in current.get("labels", []):
            name = label["name"]
            if PRIORITY.match(name) and name != wanted:
                try:
                    await self.http.request("DELETE", self._path(ticket_id) + "/labels/" + quote(name, safe=""), idempotent=True)
                except DomainError as exc:
                    if exc.body.code != "not_found":  # already gone: what this call wanted
                        raise
        return await self.http.json("GET", self._path(ticket_id))  # type: ignore[no-any-return]

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Ticket:
        raw = await self.http.json("GET", self._path(ticket_id))
        wanted = name_key(to)  # any case, spacing or canonical form (servers.ticketing.normal)
        repo, _ = self._number(ticket_id)
        if (current := self._ticket(raw, repo, [])).status == wanted:
            return current  # already there: nothing to write, whatever expected_version says (a retry of a move that landed)
        if expected_version is not None and raw["updated_at"] != expected_version:
            raise DomainError("conflict", f"{ticket_id} changed since you read it (updated {raw['updated_at']}); get it again",
                              details={"current_version": raw["updated_at"]})
        allowed = [t.to_status for t in transitions(raw)]
        if wanted not in allowed:
            raise DomainError("conflict", f"{ticket_id} is {raw['state']} on GitHub and cannot move to {to!r}; allowed: {', '.join(allowed)}",
                              details={"allowed": allowed})
        body = {"state": "open"} if wanted == "open" else {"state": "closed", "state_reason": "completed" if wanted == "resolved" else "not_planned"}
        return self._ticket(await self.http.json("PATCH", self._path(ticket_id), json=body, idempotent=True), repo, [])

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment:
        if not public:
            raise DomainError("invalid_argument", "GitHub has no internal comments; everything on an issue is visible to its readers")
        path = self._path(ticket_id)  # an id outside the allowed repositories is refused before anything is sent
        return to_comment(await comment_once("GitHub", ticket_id, lambda: self.http.json("POST", path + "/comments", json={"body": body})))

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Link:
        self._path(ticket_id)  # both ids inside the allowed repositories, or nothing is written
        other_repo, number = self._number(other_id, "other_id")
        reference = f"{other_repo}#{number}" if other_repo != self._number(ticket_id)[0] else f"#{number}"
        text = f"{link_type.capitalize()} {reference}"
        if not await self._has_comment(ticket_id, text):  # a retry finds its comment: the link is written once
            await self.add_comment(ticket_id, text, True)
        return Link(type=link_type, direction="outward", ticket=self.scope.ticket_id(other_repo, number))

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

    async def _search_all(self, searches: list[list[str]], created: list[str], per_page: int,
                          shorten: str) -> tuple[list[dict[str, Any]], int, bool]:
        """The first page of each search (`repo_chunks`), merged (`merged`), their counts added up (no issue is
        in two: each repository is in one search), and whether GitHub said any of them is incomplete
        (`incomplete_results`: its search timed out and answered with what it had found)."""
        pages: list[list[dict[str, Any]]] = []
        count = 0
        incomplete = False
        todo = list(reversed(searches))
        sent = 0
        while todo:
            terms = todo.pop()
            if sent == MAX_SEARCHES:  # refusals and halves included: a page's searches stay bounded
                raise DomainError("invalid_argument", f"GitHub counts these searches longer than this server does, and "
                                  f"searching every repository would take more than {sent} searches a page (GitHub allows 30 "
                                  "a minute): name the repositories to search (project, or repo:owner/name in native_query), "
                                  "or ask the operator to shorten GITHUB_REPOS", details={"field": shorten.split(" ", 1)[0]})
            sent += 1
            try:
                body = await self.http.json("GET", "/search/issues", params={
                    "q": " ".join(terms + created), "per_page": per_page, "page": 1, "sort": "created", "order": "desc"})
            except DomainError as exc:
                # GitHub counts the query its own way (said to count an encoded space as three characters): a search
                # it finds too long is split in two, down to one repository (`github_search.halves`)
                if too_long(exc):
                    self._strict_length = True
                if (split := halves(terms, exc)) is None:
                    if too_long(exc):  # one repository left: the caller's own part is what GitHub finds too long
                        raise DomainError("invalid_argument", f"GitHub counts this search as longer than its 256 characters "
                                          f"(it counts some characters, spaces among them, more than once): shorten {shorten}",
                                          details={"field": shorten.split(" ", 1)[0]}) from exc
                    raise
                todo += reversed(split)
                continue
            pages.append(body.get("items", []))
            count += int(body.get("total_count", 0))
            incomplete = incomplete or body.get("incomplete_results") is True
        return merged(pages, per_page), count, incomplete

    def _ticket(self, raw: dict[str, Any], repo: str, include: list[Include]) -> Ticket:
        return to_ticket(raw, repo, self.repo, include)
