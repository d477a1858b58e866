"""The embedded ticketing backend: tickets, comments, links and users in SQLite, with a small
workflow (open → in_progress ⇄ on_hold → resolved → closed, reopen allowed)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found
from servers.kit.store import Store
from servers.ticketing.model import (
    STATUSES,
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
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EmbeddedTicketing:
    """`TicketingBackend` on a local SQLite file."""

    name = "embedded"

    def __init__(self, data_dir: Path) -> None:
        self.store = Store(data_dir / "ticketing.sqlite", _MIGRATIONS)

    # -- reading ---------------------------------------------------------------------------

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> TicketPage:
        if query.native_query:
            raise DomainError(
                "invalid_argument",
                "the embedded backend has no native query language; use text and the filters instead",
            )
        offset = int(decode_cursor(cursor).get("offset", 0))
        clauses, params = ["1=1"], []
        if query.text:
            clauses.append("(t.title LIKE ? OR t.description LIKE ? OR t.key = ?)")
            params += [f"%{query.text}%", f"%{query.text}%", query.text]
        for column, values in (("t.status", query.status), ("t.priority", query.priority)):
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params += list(values)
        if query.project:
            clauses.append("t.project = ?")
            params.append(query.project)
        if query.type:
            clauses.append("t.type = ?")
            params.append(query.type)
        if query.assignee:
            clauses.append("(t.assignee = ? OR u.email = ? OR u.name = ?)")
            params += [query.assignee] * 3
        if query.updated_since:
            clauses.append("t.updated_at >= ?")
            params.append(query.updated_since.astimezone(UTC).isoformat(timespec="milliseconds"))
        for label in query.labels or []:
            clauses.append("EXISTS (SELECT 1 FROM json_each(t.labels) WHERE value = ?)")
            params.append(label)
        where = " AND ".join(clauses)

        def run(db: sqlite3.Connection) -> TicketPage:
            base = f"FROM tickets t LEFT JOIN users u ON u.id = t.assignee WHERE {where}"
            total = db.execute(f"SELECT COUNT(*) {base}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT t.* {base} ORDER BY t.updated_at DESC, t.rowid DESC LIMIT ? OFFSET ?", [*params, limit, offset]
            ).fetchall()
            tickets = [self._ticket(db, row, []) for row in rows]
            more = offset + len(rows) < total
            return TicketPage(tickets=tickets, total=total, next_cursor=encode_cursor({"offset": offset + len(rows)}) if more else None)

        return await self.store.run(run)

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket:
        return await self.store.run(lambda db: self._ticket(db, self._row(db, ticket_id), include))

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage:
        offset = int(decode_cursor(cursor).get("offset", 0))

        def run(db: sqlite3.Connection) -> CommentPage:
            self._row(db, ticket_id)
            rows = db.execute(
                "SELECT * FROM comments WHERE ticket_key = ? ORDER BY id LIMIT ? OFFSET ?", (ticket_id, limit + 1, offset)
            ).fetchall()
            more = len(rows) > limit
            comments = [_comment(r) for r in rows[:limit]]
            return CommentPage(comments=comments, next_cursor=encode_cursor({"offset": offset + limit}) if more else None)

        return await self.store.run(run)

    async def metadata(self, project: str | None, ticket_id: str | None) -> Metadata:
        transitions = None
        if ticket_id:
            ticket = await self.get(ticket_id, ["transitions"])
            transitions = ticket.transitions
        return Metadata(
            native_statuses={s: s for s in STATUSES},
            transitions=transitions,
            types=TYPES,
            priorities=PRIORITIES,  # type: ignore[arg-type]
            required_fields=["project", "title"],
        )

    async def find_users(self, query: str, limit: int) -> list[User]:
        def run(db: sqlite3.Connection) -> list[User]:
            rows = db.execute(
                "SELECT * FROM users WHERE name LIKE ? OR email LIKE ? OR id = ? ORDER BY name LIMIT ?",
                (f"%{query}%", f"%{query}%", query, limit),
            ).fetchall()
            return [User(id=r["id"], name=r["name"], email=r["email"]) for r in rows]

        return await self.store.run(run)

    # -- writing ---------------------------------------------------------------------------

    async def create(self, ticket: NewTicket) -> Ticket:
        def run(db: sqlite3.Connection) -> Ticket:
            if ticket.type not in TYPES:
                raise DomainError("invalid_argument", f"type {ticket.type!r} is not one of {TYPES}", details={"field": "type"})
            assignee = self._user_id(db, ticket.assignee) if ticket.assignee else None
            db.execute("INSERT OR IGNORE INTO projects(key) VALUES (?)", (ticket.project,))
            number = db.execute("SELECT next_number FROM projects WHERE key = ?", (ticket.project,)).fetchone()[0]
            db.execute("UPDATE projects SET next_number = next_number + 1 WHERE key = ?", (ticket.project,))
            key, now = f"{ticket.project}-{number}", _now()
            db.execute(
                "INSERT INTO tickets (key, project, title, description, status, priority, type, labels, assignee, "
                "reporter, created_at, updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, 'local', ?, ?)",
                (key, ticket.project, ticket.title, ticket.description, ticket.priority, ticket.type,
                 json.dumps(ticket.labels), assignee, now, now),
            )
            return self._ticket(db, self._row(db, key), [])

        return await self.store.run(run)

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket:
        def run(db: sqlite3.Connection) -> Ticket:
            row = self._row(db, ticket_id)
            if expected_version is not None and str(row["version"]) != expected_version:
                raise DomainError(
                    "conflict",
                    f"{ticket_id} changed since you read it (version {row['version']}, you had {expected_version}); "
                    "get it again and reapply your change",
                    details={"current_version": str(row["version"])},
                )
            changes = patch.model_dump(exclude_unset=True)
            if "type" in changes and changes["type"] not in TYPES:
                raise DomainError("invalid_argument", f"type {changes['type']!r} is not one of {TYPES}")
            if "assignee" in changes:
                changes["assignee"] = self._user_id(db, changes["assignee"]) if changes["assignee"] else None
            if "labels" in changes:
                changes["labels"] = json.dumps(changes["labels"])
            if changes:
                sets = ", ".join(f"{column} = ?" for column in changes)
                db.execute(
                    f"UPDATE tickets SET {sets}, updated_at = ?, version = version + 1 WHERE key = ?",
                    [*changes.values(), _now(), ticket_id],
                )
            return self._ticket(db, self._row(db, ticket_id), [])

        return await self.store.run(run)

    async def transition(self, ticket_id: str, to: str) -> Ticket:
        def run(db: sqlite3.Connection) -> Ticket:
            row = self._row(db, ticket_id)
            allowed = WORKFLOW[row["status"]]
            target = to.strip().lower().replace(" ", "_")
            if target not in allowed:
                raise DomainError(
                    "conflict",
                    f"{ticket_id} is {row['status']} and cannot move to {to!r}; allowed: {', '.join(allowed)}",
                    details={"allowed": allowed, "current": row["status"]},
                )
            db.execute(
                "UPDATE tickets SET status = ?, updated_at = ?, version = version + 1 WHERE key = ?", (target, _now(), ticket_id)
            )
            return self._ticket(db, self._row(db, ticket_id), [])

        return await self.store.run(run)

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment:
        def run(db: sqlite3.Connection) -> Comment:
            self._row(db, ticket_id)
            cursor = db.execute(
                "INSERT INTO comments (ticket_key, author, body, public, created_at) VALUES (?, 'local', ?, ?, ?)",
                (ticket_id, body, int(public), _now()),
            )
            db.execute("UPDATE tickets SET updated_at = ?, version = version + 1 WHERE key = ?", (_now(), ticket_id))
            return _comment(db.execute("SELECT * FROM comments WHERE id = ?", (cursor.lastrowid,)).fetchone())

        return await self.store.run(run)

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Link:
        def run(db: sqlite3.Connection) -> Link:
            self._row(db, ticket_id)
            self._row(db, other_id)
            if ticket_id == other_id:
                raise DomainError("invalid_argument", "a ticket cannot be linked to itself")
            db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, ?)", (ticket_id, other_id, link_type))
            return Link(type=link_type, direction="outward", ticket=other_id)

        return await self.store.run(run)

    async def delete(self, ticket_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            self._row(db, ticket_id)
            db.execute("DELETE FROM comments WHERE ticket_key = ?", (ticket_id,))
            db.execute("DELETE FROM links WHERE from_key = ? OR to_key = ?", (ticket_id, ticket_id))
            db.execute("DELETE FROM tickets WHERE key = ?", (ticket_id,))

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
        row = db.execute("SELECT * FROM tickets WHERE key = ?", (ticket_id,)).fetchone()
        if row is None:
            raise not_found("ticket", ticket_id)
        return row

    @staticmethod
    def _user_id(db: sqlite3.Connection, who: str) -> str:
        row = db.execute("SELECT id FROM users WHERE id = ? OR email = ? OR name = ?", (who, who, who)).fetchone()
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
