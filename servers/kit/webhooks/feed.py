"""A domain's change feed: one row per record change, from provider webhooks and from the embedded
backend's own writes, read by the `list_changes` tool with signed keyset cursors.

The table lives in the domain's main store (so an embedded write and its change commit together).
`origin` makes a change written twice (a webhook reprocessed after a crash) count once.

`scope`: whose change it is. A webhook's change is its namespace's (the hub namespace whose route took
it; a domain server on its own: the domain's name); an embedded write's is '' — every namespace
sharing that store shares its records too. A feed reads its own scope's changes and ''. Two tenants
of one domain sharing a data dir (the default) shared one feed, so one tenant's webhook changes
reached the other's `list_changes`, resources and subscribers (outside review, events round 10).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from servers.kit.errors import DomainError
from servers.kit.keyset import open_cursor, query_fingerprint, sign_cursor, store_secret
from servers.kit.store import Store

logger = logging.getLogger("servers.webhooks")

FEED_TABLE = """CREATE TABLE IF NOT EXISTS kit_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, record_id TEXT NOT NULL,
    action TEXT NOT NULL, changed_at TEXT NOT NULL, source TEXT NOT NULL, origin TEXT UNIQUE);
CREATE INDEX IF NOT EXISTS kit_changes_at ON kit_changes (changed_at, seq)"""


class Change(BaseModel):
    """One record changed: what kind, which id, how, when, and who told us (`embedded` or a provider)."""

    seq: int = Field(description="Position in this domain's feed (increasing).")
    kind: str = Field(description="Record kind, e.g. ticket, event, invoice, employee.")
    record_id: str
    action: Literal["created", "updated", "deleted"]
    changed_at: datetime
    source: str = Field(description="'embedded' for this server's own writes, else the provider that sent a webhook.")


class ChangePage(BaseModel):
    changes: list[Change]
    next_cursor: str | None = None


def _ensure(db: sqlite3.Connection) -> None:
    for statement in FEED_TABLE.split(";"):  # IF NOT EXISTS: a schema lookup, microseconds
        db.execute(statement)
    if "scope" not in {row[1] for row in db.execute("PRAGMA table_info(kit_changes)")}:
        try:  # a feed from before changes were scoped: its rows are everyone's ('')
            db.execute("ALTER TABLE kit_changes ADD COLUMN scope TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError:  # another process added it meanwhile
            if "scope" not in {row[1] for row in db.execute("PRAGMA table_info(kit_changes)")}:
                raise


def in_scope(scope: str) -> tuple[str, list[str]]:
    """The SQL condition (and its argument) for the changes a feed of `scope` may show."""
    return "scope IN ('', ?)", [scope]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def emit_change(db: sqlite3.Connection, kind: str, record_id: str, action: str, *, source: str = "embedded",
                origin: str | None = None, scope: str = "") -> None:
    """Append a change inside the caller's transaction (call it from an embedded store's write)."""
    _ensure(db)
    db.execute("INSERT OR IGNORE INTO kit_changes (kind, record_id, action, changed_at, source, origin, scope) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", (kind, record_id, action, _now(), source, origin, scope))


class ChangeFeed:
    """Reads and appends a domain's changes; `listeners` are awaited after new changes commit
    (`resources.ChangeResources.check` announces them to subscribers)."""

    def __init__(self, store: Store, scope: str = "") -> None:
        self.store = store
        self.scope = scope
        """Whose webhook changes this feed appends and shows (`Intake.bind` sets the hub namespace)."""
        self.listeners: list[Callable[[], Awaitable[None]]] = []

    async def append(self, rows: Iterable[tuple[str, str, str, str, str]]) -> None:
        """(kind, record_id, action, source, origin) rows, each at most once per origin."""
        rows = list(rows)

        def work(db: sqlite3.Connection) -> None:
            for kind, record_id, action, source, origin in rows:  # an origin is unique in its scope
                emit_change(db, kind, record_id, action, source=source, scope=self.scope,
                            origin=f"{self.scope}/{origin}" if self.scope else origin)

        await self.store.run(work)
        for listener in self.listeners:
            try:
                await listener()
            except Exception:  # an announcement failing must not fail (and retry) the processed event
                logger.exception("change listener failed")

    async def page(self, since: datetime | None, kinds: list[str] | None, limit: int, cursor: str | None) -> ChangePage:
        if since is not None and since.tzinfo is None:
            raise DomainError("invalid_argument", "since needs a UTC offset, e.g. 2026-01-31T09:00:00Z",
                              details={"field": "since"})
        wanted = sorted(set(kinds or []))
        after_text = since.astimezone(UTC).isoformat(timespec="microseconds") if since else ""
        fingerprint = query_fingerprint("changes", {"since": after_text, "kinds": wanted})

        def work(db: sqlite3.Connection) -> ChangePage:
            _ensure(db)
            position = open_cursor(store_secret(db), cursor, fingerprint, 1)
            scoped, scope_args = in_scope(self.scope)
            where, args = [scoped, "changed_at >= ?", "seq > ?"], [*scope_args, after_text, int(position[0]) if position else 0]
            if wanted:
                where.append(f"kind IN ({', '.join('?' * len(wanted))})")
                args += wanted
            rows = db.execute(f"SELECT * FROM kit_changes WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                              [*args, limit + 1]).fetchall()
            changes = [Change(seq=r["seq"], kind=r["kind"], record_id=r["record_id"], action=r["action"],
                              changed_at=r["changed_at"], source=r["source"]) for r in rows[:limit]]
            more = len(rows) > limit
            return ChangePage(changes=changes,
                              next_cursor=sign_cursor(store_secret(db), fingerprint, [changes[-1].seq]) if more else None)

        return await self.store.run(work)
