"""A domain's change feed: one row per record change, from provider webhooks and from the embedded
backend's own writes, read by the `list_changes` tool with signed keyset cursors.

The table lives in the domain's main store (so an embedded write and its change commit together).
`origin` makes a change written twice (a webhook reprocessed after a crash) count once.

`scope`: whose change it is. A webhook's change is its namespace's (the hub namespace whose route took
it; a domain server on its own: the domain's name); an embedded write's is '' — every namespace
sharing that store shares its records too. A feed reads its own scope's changes and ''. Two tenants
of one domain sharing a data dir (the default) shared one feed, so one tenant's webhook changes
reached the other's `list_changes`, resources and subscribers (outside review, events round 10).

Retention (decided in outside review events round 27: the table grew for ever and a filtered read cost
~110 ms at a million rows): `trim` deletes the oldest changes — those recorded more than
`<DOMAIN>_CHANGES_KEEP_DAYS` ago (default 30, at most 36,500) and those beyond the newest
`<DOMAIN>_CHANGES_KEEP_ROWS` (default 100,000) — `TRIM_BATCH` rows per transaction, never on a read or a
write: hourly from every process that serves the feed (`upkeep.FeedUpkeep`, in the server's lifespan:
stdio, HTTP, in-process in the hub; and the webhook processor's purge), each scope at most once per
interval whichever process looks first (`trim_if_due`; events round 28: a domain served over stdio only
never trimmed). The row limit is per scope (review round 2 #5: counted over the shared table, one
tenant's flood trimmed another's history): a feed trims its own scope's changes and the shared ('')
ones, each as a prefix of `seq`. The age limit is the domain's, so it applies to every scope's changes
in the store, also those of a namespace no longer configured (events round 28: they were never
trimmed); another scope's row limit is left to its own feed, which knows it. The last
trimmed position per scope is kept (`kit_changes_trimmed_scope`): a cursor from before it is refused
(`invalid_argument`, saying to start again from `since` or without a cursor) and a `since` before it
gets its page with `gap` set, never a silent skip. `since` is turned into a starting position by the
`changed_at` index: the writer stamps a change inside its transaction and never earlier than the
newest stamp (`_stamp`: a clock stepped back stamps the newest time again until it catches up), so
time and position agree and a poll costs its page, not the history.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from servers.kit.errors import DomainError
from servers.kit.keyset import open_cursor, query_fingerprint, sign_cursor, store_secret
from servers.kit.store import Store
from servers.kit.webhooks.retention import retention_limits

logger = logging.getLogger("servers.webhooks")

FEED_TABLE = """CREATE TABLE IF NOT EXISTS kit_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, record_id TEXT NOT NULL,
    action TEXT NOT NULL, changed_at TEXT NOT NULL, source TEXT NOT NULL, origin TEXT UNIQUE);
CREATE INDEX IF NOT EXISTS kit_changes_at ON kit_changes (changed_at, seq);
CREATE INDEX IF NOT EXISTS kit_changes_record ON kit_changes (kind, record_id, seq);
CREATE TABLE IF NOT EXISTS kit_changes_trimmed (one INTEGER PRIMARY KEY CHECK (one = 1),
    through_seq INTEGER NOT NULL, changed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kit_changes_trimmed_scope (scope TEXT PRIMARY KEY,
    through_seq INTEGER NOT NULL, changed_at TEXT NOT NULL)"""
UPKEEP_TABLE = "CREATE TABLE IF NOT EXISTS kit_changes_upkeep (scope TEXT PRIMARY KEY, next_at REAL NOT NULL)"
"""When each scope's retention is next due, for every process sharing the store (`ChangeFeed.trim_if_due`)."""
SCOPE_INDEX = "CREATE INDEX IF NOT EXISTS kit_changes_scope ON kit_changes (scope, seq)"
"""Made after `scope` exists (a feed from before scopes gains the column first): per-scope trims by index."""
KEEP_DAYS = 30.0
KEEP_ROWS = 100_000
TRIM_BATCH = 5000
"""Changes deleted per transaction when trimming: a first trim of a long history never holds the writer long."""
RETRY_S = 60.0
"""After a failed trim (a busy store), when the next look may try again."""
MAX_SCOPES = 10_000
"""Scopes a trim walks at most (far beyond any config's namespaces; bounds the walk of a damaged file)."""


def feed_limits(domain: str, environ: Mapping[str, str] | None = None) -> tuple[float, int]:
    """How long and how many changes a domain's feed keeps: (seconds, rows), from
    `<DOMAIN>_CHANGES_KEEP_DAYS` (default 30) and `<DOMAIN>_CHANGES_KEEP_ROWS` (default 100,000)."""
    return retention_limits(domain, "CHANGES", KEEP_DAYS, KEEP_ROWS, "changes", environ)


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
    gap: str | None = Field(default=None, description="Set when changes you asked for (since) were deleted by "
                                                       "the feed's retention: what is missing and what to do.")

    @model_serializer(mode="wrap")
    def _without_empty_gap(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`gap` only when there is one: a page's shape is otherwise what it was."""
        data: dict[str, Any] = handler(self)
        if data.get("gap") is None:
            data.pop("gap", None)
        return data


def _ensure(db: sqlite3.Connection) -> None:
    for statement in FEED_TABLE.split(";"):  # IF NOT EXISTS: a schema lookup, microseconds
        db.execute(statement)
    if "scope" not in {row[1] for row in db.execute("PRAGMA table_info(kit_changes)")}:
        try:  # a feed from before changes were scoped: its rows are everyone's ('')
            db.execute("ALTER TABLE kit_changes ADD COLUMN scope TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError:  # another process added it meanwhile
            if "scope" not in {row[1] for row in db.execute("PRAGMA table_info(kit_changes)")}:
                raise
    db.execute(SCOPE_INDEX)
    db.execute(UPKEEP_TABLE)


def trimmed_through(db: sqlite3.Connection, scope: str = "") -> tuple[int, str] | None:
    """The last position deleted by retention among the changes a feed of `scope` shows (its own and
    ''), and when that change was recorded; None: nothing of them trimmed. Also counts the store-wide
    mark a feed trimmed before per-scope retention (review round 2 #5) left."""
    rows = db.execute("SELECT through_seq, changed_at FROM kit_changes_trimmed WHERE one = 1 UNION ALL "
                      "SELECT through_seq, changed_at FROM kit_changes_trimmed_scope WHERE scope IN ('', ?)",
                      (scope,)).fetchall()
    return (max(int(r[0]) for r in rows), max(str(r[1]) for r in rows)) if rows else None


def _start_of(db: sqlite3.Connection, since: str) -> int:
    """The position a read `since` starts after: one `changed_at` index lookup (see the module)."""
    row = db.execute("SELECT seq FROM kit_changes INDEXED BY kit_changes_at WHERE changed_at >= ?"
                     " ORDER BY changed_at, seq LIMIT 1", (since,)).fetchone()
    if row is None:
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM kit_changes").fetchone()[0])
    return int(row[0]) - 1


def _cutoff(now: float, keep_s: float) -> str:
    """The `changed_at` before which changes are past `keep_s`; saturates at the earliest date instead of
    raising on a retention longer than the calendar (a `ChangeFeed` built without `feed_limits`)."""
    try:
        return (datetime.fromtimestamp(now, UTC) - timedelta(seconds=keep_s)).isoformat(timespec="microseconds")
    except (OverflowError, ValueError):
        return ""  # sorts before every stamp: nothing is past the time limit


def in_scope(scope: str) -> tuple[str, list[str]]:
    """The SQL condition (and its argument) for the changes a feed of `scope` may show."""
    return "scope IN ('', ?)", [scope]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _stamp(db: sqlite3.Connection) -> str:
    """Now, or the newest stamp already in the feed if the clock stepped back (NTP, a VM restored): inside
    the writer's transaction, so `changed_at` never decreases along `seq` and a `since` poller resuming
    from the last `changed_at` it saw misses nothing (review round 2 #2). One index lookup."""
    now = _now()
    newest = db.execute("SELECT MAX(changed_at) FROM kit_changes").fetchone()[0]
    return newest if newest is not None and str(newest) > now else now


def emit_change(db: sqlite3.Connection, kind: str, record_id: str, action: str, *, source: str = "embedded",
                origin: str | None = None, scope: str = "") -> None:
    """Append a change inside the caller's transaction (call it from an embedded store's write)."""
    _ensure(db)
    db.execute("INSERT OR IGNORE INTO kit_changes (kind, record_id, action, changed_at, source, origin, scope) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", (kind, record_id, action, _stamp(db), source, origin, scope))


class ChangeFeed:
    """Reads and appends a domain's changes; `listeners` are awaited after new changes commit
    (`resources.ChangeResources.check` announces them to subscribers)."""

    def __init__(self, store: Store, scope: str = "", keep: tuple[float, int] | None = None) -> None:
        self.store = store
        self.scope = scope
        """Whose webhook changes this feed appends and shows (`Intake.bind` sets the hub namespace)."""
        self.keep_s, self.keep_rows = keep or (KEEP_DAYS * 86400.0, KEEP_ROWS)
        """Retention (`feed_limits`): what `trim` keeps."""
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
            trimmed, gap = trimmed_through(db, self.scope), None
            if position is not None and trimmed is not None and int(position[0]) < trimmed[0]:
                raise DomainError("invalid_argument", f"this cursor points before change {trimmed[0] + 1}, the oldest this "
                                  f"feed still keeps: the changes up to {trimmed[1]} were deleted by its retention, so "
                                  "paging on would skip some. Start again without a cursor, with since set to the last "
                                  "changed_at you saw (or none), and re-read the records you track with the get tools",
                                  details={"field": "cursor", "trimmed_through_seq": trimmed[0]})
            if position is None and after_text and trimmed is not None and after_text <= trimmed[1]:
                gap = (f"changes recorded up to {trimmed[1]} were deleted by this feed's retention (it keeps "
                       f"{self.keep_s / 86400:g} days, at most {self.keep_rows} changes per namespace): this page starts at the "
                       "oldest kept; re-read the records you track with the get tools to catch up")
            start = _start_of(db, after_text) if after_text and position is None else 0
            scoped, scope_args = in_scope(self.scope)
            # by position only: a change stamped earlier after a later one (a clock step recorded before
            # `_stamp`) is still after the start, never filtered out by its time (review round 2 #2)
            where, args = [scoped, "seq > ?"], [*scope_args, int(position[0]) if position else start]
            if wanted:
                where.append(f"kind IN ({', '.join('?' * len(wanted))})")
                args += wanted
            rows = db.execute(f"SELECT * FROM kit_changes WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                              [*args, limit + 1]).fetchall()
            changes = [Change(seq=r["seq"], kind=r["kind"], record_id=r["record_id"], action=r["action"],
                              changed_at=r["changed_at"], source=r["source"]) for r in rows[:limit]]
            more = len(rows) > limit
            return ChangePage(changes=changes, gap=gap,
                              next_cursor=sign_cursor(store_secret(db), fingerprint, [changes[-1].seq]) if more else None)

        return await self.store.run(work)

    async def trim(self, now: float | None = None) -> int:
        """Delete the changes past retention (module docstring), oldest first, `TRIM_BATCH` per
        transaction (by primary key: the cost is the rows deleted); the number deleted. Its own scope's
        and the shared ones by age and rows; every other scope's (a namespace no longer configured) by age."""
        cutoff = _cutoff(time.time() if now is None else now, self.keep_s)

        def work(db: sqlite3.Connection, scope: str, by_rows: bool) -> int:
            _ensure(db)
            newest = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM kit_changes").fetchone()[0])
            young = db.execute("SELECT seq FROM kit_changes INDEXED BY kit_changes_at WHERE changed_at >= ?"
                               " ORDER BY changed_at, seq LIMIT 1", (cutoff,)).fetchone()
            kept = db.execute("SELECT seq FROM kit_changes INDEXED BY kit_changes_scope WHERE scope = ?"
                              " ORDER BY seq DESC LIMIT 1 OFFSET ?", (scope, self.keep_rows - 1)).fetchone() if by_rows else None
            below = max(int(kept[0]) if kept else 0, int(young[0]) if young else newest + 1)
            doomed: list[Any] = db.execute("SELECT seq, changed_at FROM kit_changes INDEXED BY kit_changes_scope"
                                           " WHERE scope = ? AND seq < ? ORDER BY seq LIMIT ?",
                                           (scope, below, TRIM_BATCH)).fetchall()
            if not doomed:
                return 0
            db.execute("DELETE FROM kit_changes WHERE scope = ? AND seq <= ?", (scope, doomed[-1][0]))
            db.execute("INSERT INTO kit_changes_trimmed_scope VALUES (?, ?, ?) ON CONFLICT (scope) DO UPDATE SET"
                       " through_seq = excluded.through_seq, changed_at = MAX(changed_at, excluded.changed_at)",
                       (scope, doomed[-1][0], max(r[1] for r in doomed)))
            return len(doomed)

        own = list(dict.fromkeys((self.scope, "")))  # its own changes and the shared ones, by age and rows
        others = [s for s in await self.store.run(_scopes) if s not in own]  # any other scope: by age only
        total = 0
        for scope, by_rows in [*((s, True) for s in own), *((s, False) for s in others)]:
            while deleted := await self.store.run(lambda db, scope=scope, by_rows=by_rows: work(db, scope, by_rows)):
                total += deleted
        if total:
            logger.info("trimmed %d changes past the feed's retention", total)
        return total

    async def trim_if_due(self, now: float, every_s: float) -> int | None:
        """`trim`, unless this scope's feed was trimmed less than `every_s` ago by any process sharing
        the store (`kit_changes_upkeep`, claimed in one write transaction, so two processes never both
        trim one scope per interval); None when not due. A failed trim is due again `RETRY_S` later."""

        def claim(db: sqlite3.Connection) -> bool:
            _ensure(db)
            row = db.execute("SELECT next_at FROM kit_changes_upkeep WHERE scope = ?", (self.scope,)).fetchone()
            if row is not None and now < float(row[0]) <= now + every_s:  # beyond: a clock stepped back, due now
                return False
            db.execute("INSERT INTO kit_changes_upkeep VALUES (?, ?) ON CONFLICT (scope) DO UPDATE SET"
                       " next_at = excluded.next_at", (self.scope, now + every_s))
            return True

        if not await self.store.run(claim):
            return None
        try:
            return await self.trim(now)
        except Exception:
            try:  # let the next look (any process's) try again soon rather than in `every_s`
                await self.store.run(lambda db: db.execute("UPDATE kit_changes_upkeep SET next_at = ? WHERE scope = ?",
                                                           (now + min(RETRY_S, every_s), self.scope)))
            except Exception:  # noqa: BLE001 — the store's own failure: the trim's error is the one to tell
                pass
            raise


def _scopes(db: sqlite3.Connection) -> list[str]:
    """The distinct scopes in the feed, one `kit_changes_scope` index seek each (never a scan of the rows)."""
    _ensure(db)
    found: list[str] = []
    after: str | None = None
    while len(found) < MAX_SCOPES:
        row = db.execute("SELECT MIN(scope) FROM kit_changes" + (" WHERE scope > ?" if after is not None else ""),
                         () if after is None else (after,)).fetchone()
        if row is None or row[0] is None:
            break
        after = str(row[0])
        found.append(after)
    return found
