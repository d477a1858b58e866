"""The embedded ticketing backend: tickets, comments, links and users in SQLite, with a small
workflow (open → in_progress ⇄ on_hold → resolved → closed, reopen allowed).

Projects exist only once created (`create_project`, or the `--demo` data): a ticket for an unknown
project is refused with `not_found` listing the known ones, so a mistyped key never makes a new
project. Project keys and ticket ids are matched case-insensitively ("pay" finds PAY, "pay-1" finds
PAY-1). Lists page with signed keyset cursors bound to their query (see `servers.kit.keyset` and
`servers.ticketing.query`). A ticket's reporter and a comment's author are the caller who wrote it
(`api_key:alice` behind the hub; `local`, the operator, when the server runs on its own).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from servers.kit.caller import current_caller
from servers.kit.errors import DomainError, not_found
from servers.kit.keyset import open_cursor, query_fingerprint, sign_cursor, store_secret
from servers.kit.store import Store
from servers.kit.webhooks.feed import emit_change
from servers.ticketing.checks import link_type as checked_link_type
from servers.ticketing.checks import project_key
from servers.ticketing.edits import check_version, effective_changes, versioned_update
from servers.ticketing.model import (
    STATUSES,
    Comment,
    CommentPage,
    Include,
    Link,
    Metadata,
    NewTicket,
    Project,
    SearchQuery,
    Status,
    Ticket,
    TicketPage,
    TicketPatch,
    Transition,
    User,
)
from servers.ticketing.normal import fold, is_email, name_key
from servers.ticketing.normal import register as register_folds
from servers.ticketing.query import like_pattern, normalized_filters, page_rows

WORKFLOW: dict[Status, list[Status]] = {
    "open": ["in_progress", "on_hold", "resolved", "closed"],
    "in_progress": ["open", "on_hold", "resolved"],
    "on_hold": ["open", "in_progress"],
    "resolved": ["closed", "open"],
    "closed": ["open"],
}
TYPES = ["task", "bug", "incident", "story", "question"]
PRIORITIES = ["critical", "high", "medium", "low"]

_MIGRATIONS = [
    """CREATE TABLE projects (key TEXT PRIMARY KEY, next_number INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT);
    CREATE TABLE tickets (
        rowid INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, project TEXT NOT NULL, title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, priority TEXT, type TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '[]', assignee TEXT REFERENCES users(id), reporter TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
    CREATE INDEX tickets_updated ON tickets(updated_at);
    CREATE TABLE comments (
        id INTEGER PRIMARY KEY, ticket_key TEXT NOT NULL REFERENCES tickets(key) ON DELETE CASCADE,
        author TEXT, body TEXT NOT NULL, public INTEGER NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE links (from_key TEXT NOT NULL, to_key TEXT NOT NULL, type TEXT NOT NULL,
        PRIMARY KEY (from_key, to_key, type))""",
    """CREATE INDEX tickets_created ON tickets(created_at);
    CREATE INDEX comments_ticket ON comments(ticket_key, id)""",
    # Comment ids are never used again (a key that added a deleted comment must not name a new one).
    """CREATE TABLE comments_kept (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_key TEXT NOT NULL REFERENCES tickets(key) ON DELETE CASCADE,
        author TEXT, body TEXT NOT NULL, public INTEGER NOT NULL, created_at TEXT NOT NULL);
    INSERT INTO comments_kept SELECT id, ticket_key, author, body, public, created_at FROM comments;
    DROP TABLE comments;
    ALTER TABLE comments_kept RENAME TO comments;
    CREATE INDEX comments_ticket ON comments(ticket_key, id)""",
]
_KNOWN_PROJECTS_SHOWN = 50


def _never_reuse_comment_ids(db: sqlite3.Connection) -> None:
    """Start comment ids above every id an `add_comment` key ever answered with: the migration to
    AUTOINCREMENT could only start above the comments that survived, and a deleted one above them
    (its key kept) would otherwise be issued again once (second outside review)."""
    db.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'comments', 0 "
               "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'comments')")
    db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT MAX(CAST(record_id AS INTEGER)) FROM idempotency_keys "
               "WHERE tool = 'add_comment' AND record_id GLOB '[0-9]*'), 0)) WHERE name = 'comments'")


def _author() -> str:
    """Who is writing: the authenticated caller's principal (`api_key:alice`), or `local` for the
    standalone operator; read in the tool call's task, before the work moves to the store's thread
    (outside review 18, defect 12: every reporter and comment author read `local`)."""
    return current_caller().principal


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EmbeddedTicketing:
    """`TicketingBackend` on a local SQLite file."""

    name = "embedded"
    version_check = "Checked in the write itself: of two writes sent with one version, exactly one applies and the other gets conflict."

    def __init__(self, data_dir: Path) -> None:
        self.store = Store(data_dir / "ticketing.sqlite", _MIGRATIONS)
        self._secret: bytes | None = None
        _never_reuse_comment_ids(self.store._db)  # noqa: SLF001 - at open, before any work runs
        register_folds(self.store._db)  # noqa: SLF001 - label, text and email comparisons (servers.ticketing.normal)

    def _cursor_secret(self, db: sqlite3.Connection) -> bytes:
        if self._secret is None:
            self._secret = store_secret(db)
        return self._secret

    # -- reading ---------------------------------------------------------------------------

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> TicketPage:
        if query.native_query:
            raise DomainError(
                "invalid_argument",
                "the embedded backend has no native query language; use text and the filters instead",
            )

        def run(db: sqlite3.Connection) -> TicketPage:
            project = self._project(db, query.project) if query.project else None
            filters = normalized_filters(query, project)
            secret, fingerprint = self._cursor_secret(db), query_fingerprint("tickets", filters)
            after = open_cursor(secret, cursor, fingerprint, width=2)
            rows, total, more = page_rows(db, filters, after, limit)
            tickets = [self._ticket(db, row, []) for row in rows]
            last = [rows[-1]["created_at"], rows[-1]["rowid"]] if rows else None
            next_cursor = sign_cursor(secret, fingerprint, last) if more and last else None
            return TicketPage(tickets=tickets, total=total, next_cursor=next_cursor)

        return await self.store.run(run)

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket:
        return await self.store.run(lambda db: self._ticket(db, self._row(db, ticket_id), include))

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage:
        def run(db: sqlite3.Connection) -> CommentPage:
            key = self._row(db, ticket_id)["key"]
            secret, fingerprint = self._cursor_secret(db), query_fingerprint("comments", {"ticket": key})
            after = open_cursor(secret, cursor, fingerprint, width=1)
            rows = db.execute(
                "SELECT * FROM comments WHERE ticket_key = ? AND id > ? ORDER BY id LIMIT ?",
                (key, after[0] if after else 0, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            comments = [_comment(r) for r in rows[:limit]]
            next_cursor = sign_cursor(secret, fingerprint, [rows[limit - 1]["id"]]) if more else None
            return CommentPage(comments=comments, next_cursor=next_cursor)

        return await self.store.run(run)

    async def metadata(self, project: str | None, ticket_id: str | None) -> Metadata:
        transitions = None
        if ticket_id:
            ticket = await self.get(ticket_id, ["transitions"])
            transitions = ticket.transitions
        if project:
            await self.store.run(lambda db: self._project(db, project))
        projects = await self.store.run(lambda db: [r["key"] for r in db.execute("SELECT key FROM projects ORDER BY key")])
        return Metadata(
            projects=projects,
            native_statuses={s: s for s in STATUSES},
            transitions=transitions,
            types=TYPES,
            priorities=PRIORITIES,  # type: ignore[arg-type]
            required_fields=["project", "title"],
        )

    async def find_users(self, query: str, limit: int) -> list[User]:
        def run(db: sqlite3.Connection) -> list[User]:
            rows = db.execute(
                "SELECT * FROM users WHERE name LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\' OR id = ? ORDER BY name LIMIT ?",
                (like_pattern(query), like_pattern(query), query, limit),
            ).fetchall()
            return [User(id=r["id"], name=r["name"], email=r["email"]) for r in rows]

        return await self.store.run(run)

    # -- writing ---------------------------------------------------------------------------

    async def create_project(self, key: str) -> Project:
        """Create project `key` (upper-cased); if it exists in any case, return it with created=False."""
        canonical = project_key(key)

        def run(db: sqlite3.Connection) -> Project:
            found = db.execute("SELECT key FROM projects WHERE key = ? COLLATE NOCASE", (canonical,)).fetchone()
            if found:
                return Project(key=found["key"], created=False)
            db.execute("INSERT INTO projects(key) VALUES (?)", (canonical,))
            return Project(key=canonical, created=True)

        return await self.store.run(run)

    async def create(self, ticket: NewTicket, idempotency_key: str | None = None) -> Ticket:
        reporter = _author()

        def run(db: sqlite3.Connection) -> Ticket:
            if ticket.type not in TYPES:
                raise DomainError("invalid_argument", f"type {ticket.type!r} is not one of {TYPES}", details={"field": "type"})
            project = self._project(db, ticket.project)
            assignee = self._user_id(db, ticket.assignee) if ticket.assignee else None
            number = db.execute("SELECT next_number FROM projects WHERE key = ?", (project,)).fetchone()[0]
            db.execute("UPDATE projects SET next_number = next_number + 1 WHERE key = ?", (project,))
            key, now = f"{project}-{number}", _now()
            db.execute(
                "INSERT INTO tickets (key, project, title, description, status, priority, type, labels, assignee, "
                "reporter, created_at, updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                (key, project, ticket.title, ticket.description, ticket.priority, ticket.type,
                 json.dumps(ticket.labels), assignee, reporter, now, now),
            )
            emit_change(db, "ticket", key, "created")
            return self._ticket(db, self._row(db, key), [])

        return await self.store.run(run)

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket:
        def run(db: sqlite3.Connection) -> Ticket:
            row = self._row(db, ticket_id)
            key = row["key"]
            changes = patch.model_dump(exclude_unset=True)
            if "type" in changes and changes["type"] not in TYPES:
                raise DomainError("invalid_argument", f"type {changes['type']!r} is not one of {TYPES}")
            if "assignee" in changes:
                changes["assignee"] = self._user_id(db, changes["assignee"]) if changes["assignee"] else None
            if "labels" in changes:
                changes["labels"] = json.dumps(changes["labels"])
            # a no-op keeps version, updated_at and the feed, whatever expected_version says (edits; outside review r38b #2)
            if changes := effective_changes(row, changes):
                sets = ", ".join(f"{column} = ?" for column in changes)
                versioned_update(db, key, f"{sets}, updated_at = ?", [*changes.values(), _now()], expected_version)
                emit_change(db, "ticket", key, "updated")
            ticket = self._ticket(db, self._row(db, key), [])
            ticket.changed = sorted(changes)
            return ticket

        return await self.store.run(run)

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Ticket:
        def run(db: sqlite3.Connection) -> Ticket:
            row = self._row(db, ticket_id)
            key = row["key"]
            allowed = WORKFLOW[row["status"]]
            target = name_key(to)  # any case, spacing or canonical form (servers.ticketing.normal)
            if target == row["status"]:  # already there: nothing to write, whatever expected_version says (a retry of a
                return self._ticket(db, row, [])  # move that landed: outside review r38b #2)
            check_version(row, expected_version)
            if target not in allowed:
                raise DomainError(
                    "conflict",
                    f"{key} is {row['status']} and cannot move to {to!r}; allowed: {', '.join(allowed)}",
                    details={"allowed": allowed, "current": row["status"]},
                )
            versioned_update(db, key, "status = ?, updated_at = ?", [target, _now()], expected_version)
            emit_change(db, "ticket", key, "updated")
            return self._ticket(db, self._row(db, key), [])

        return await self.store.run(run)

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment:
        author = _author()

        def run(db: sqlite3.Connection) -> Comment:
            key = self._row(db, ticket_id)["key"]
            cursor = db.execute(
                "INSERT INTO comments (ticket_key, author, body, public, created_at) VALUES (?, ?, ?, ?, ?)",
                (key, author, body, int(public), _now()),
            )
            db.execute("UPDATE tickets SET updated_at = ?, version = version + 1 WHERE key = ?", (_now(), key))
            emit_change(db, "ticket", key, "updated")
            return _comment(db.execute("SELECT * FROM comments WHERE id = ?", (cursor.lastrowid,)).fetchone())

        return await self.store.run(run)

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Link:
        def run(db: sqlite3.Connection) -> Link:
            key, other = self._row(db, ticket_id)["key"], self._row(db, other_id)["key"]
            if key == other:
                raise DomainError("invalid_argument", "a ticket cannot be linked to itself")
            canonical, reverse = checked_link_type(link_type)
            source, target = (other, key) if reverse else (key, other)
            db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, ?)", (source, target, canonical))
            return Link(type=canonical, direction="inward" if reverse else "outward", ticket=other)

        return await self.store.run(run)

    async def delete(self, ticket_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            key = self._row(db, ticket_id)["key"]
            db.execute("DELETE FROM comments WHERE ticket_key = ?", (key,))
            db.execute("DELETE FROM links WHERE from_key = ? OR to_key = ?", (key, key))
            db.execute("DELETE FROM tickets WHERE key = ?", (key,))
            emit_change(db, "ticket", key, "deleted")

        await self.store.run(run)

    async def seed_demo(self) -> None:
        """A few users and tickets to try the tools with (`--demo`); a no-op if there is data."""

        def run(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
                return False
            db.executemany(
                "INSERT INTO users VALUES (?, ?, ?)",
                [("u1", "Ada Lovelace", "ada@example.com"), ("u2", "Alan Turing", "alan@example.com"),
                 ("u3", "Grace Hopper", "grace@example.com")],
            )
            db.executemany("INSERT OR IGNORE INTO projects(key) VALUES (?)", [("OPS",), ("APP",)])
            return True

        if not await self.store.run(run):
            return
        demo = [
            NewTicket(project="OPS", title="VPN drops every hour", type="incident", priority="high", labels=["network"], assignee="u1"),
            NewTicket(project="OPS", title="Rotate the TLS certificate on the wiki", priority="medium", assignee="u2"),
            NewTicket(project="APP", title="Export to CSV loses accents", type="bug", priority="low", labels=["i18n"]),
        ]
        for ticket in demo:
            await self.create(ticket)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _row(db: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
        """The ticket with key `ticket_id`, matched case-insensitively (an exact match wins)."""
        row = db.execute(
            "SELECT * FROM tickets WHERE key = ? COLLATE NOCASE ORDER BY key = ? DESC LIMIT 1", (ticket_id, ticket_id)
        ).fetchone()
        if row is None:
            raise not_found("ticket", ticket_id)
        return row

    @staticmethod
    def _project(db: sqlite3.Connection, key: str) -> str:
        """The stored key of project `key` (case-insensitive), else `not_found` naming the known ones."""
        row = db.execute(
            "SELECT key FROM projects WHERE key = ? COLLATE NOCASE ORDER BY key = ? DESC LIMIT 1", (key.strip(), key.strip())
        ).fetchone()
        if row is not None:
            return row["key"]
        known = [r["key"] for r in db.execute("SELECT key FROM projects ORDER BY key LIMIT ?", (_KNOWN_PROJECTS_SHOWN + 1,))]
        listed = ", ".join(known[:_KNOWN_PROJECTS_SHOWN]) + (", …" if len(known) > _KNOWN_PROJECTS_SHOWN else "")
        hint = f"known projects: {listed}" if known else "there are no projects yet"
        raise DomainError(
            "not_found",
            f"project {key!r} does not exist ({hint}); use one of those, or create it first with create_project",
            details={"field": "project", "known_projects": known[:_KNOWN_PROJECTS_SHOWN]},
        )

    @staticmethod
    def _user_id(db: sqlite3.Connection, who: str) -> str:
        row = db.execute("SELECT id FROM users WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1", (who, who, who)).fetchone()
        if row is None and is_email(who):  # emails compare without case (outside review 8, defect 7)
            row = db.execute("SELECT id FROM users WHERE fold(email) = ? ORDER BY id LIMIT 1", (fold(who.strip()),)).fetchone()
        if row is None:
            raise DomainError("invalid_argument", f"no user {who!r}; use find_users to get an id", details={"field": "assignee"})
        return row["id"]

    def _ticket(self, db: sqlite3.Connection, row: sqlite3.Row, include: list[Include]) -> Ticket:
        def user(user_id: str | None) -> User | None:
            if not user_id:
                return None
            found = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
            return User(id=found["id"], name=found["name"], email=found["email"]) if found else User(id=user_id, name=user_id)

        ticket = Ticket(
            id=row["key"], provider="embedded", remote_id=str(row["rowid"]), key=row["key"], project=row["project"],
            title=row["title"], description=row["description"], status=row["status"], native_status=row["status"],
            priority=row["priority"], type=row["type"], labels=json.loads(row["labels"]), assignee=user(row["assignee"]),
            reporter=user(row["reporter"]), created_at=row["created_at"], updated_at=row["updated_at"],
            version=str(row["version"]),
        )
        if "comments" in include:
            ticket.comments = [_comment(r) for r in db.execute("SELECT * FROM comments WHERE ticket_key = ? ORDER BY id", (row["key"],))]
        if "transitions" in include:
            ticket.transitions = [Transition(id=s, name=s.replace("_", " "), to_status=s, native_to=s) for s in WORKFLOW[row["status"]]]
        if "links" in include:
            out = [Link(type=r["type"], direction="outward", ticket=r["to_key"]) for r in db.execute("SELECT * FROM links WHERE from_key = ?", (row["key"],))]
            inward = [Link(type=r["type"], direction="inward", ticket=r["from_key"]) for r in db.execute("SELECT * FROM links WHERE to_key = ?", (row["key"],))]
            ticket.links = out + inward
        if "raw" in include:
            ticket.raw = dict(row)
        return ticket


def _comment(row: sqlite3.Row) -> Comment:
    return Comment(id=str(row["id"]), author=row["author"], body=row["body"], public=bool(row["public"]), created_at=row["created_at"])
