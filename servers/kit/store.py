"""The embedded SQLite store every domain uses: one file per domain in the data dir, WAL mode,
versioned migrations at start, queries run off the event loop, and the idempotency table."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio

from hub.datadir import open_db
from servers.kit.errors import DomainError

T = TypeVar("T")

# Idempotency records (servers/kit/idempotency.py): one row per (principal, tool, key), bound to a
# fingerprint of the call's arguments. `result` is NULL while the first call is still running.
_IDEMPOTENCY_TABLE = """CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal TEXT NOT NULL, tool TEXT NOT NULL, key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, result TEXT, record_id TEXT, deleted INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (principal, tool, key));
CREATE INDEX IF NOT EXISTS idempotency_keys_record ON idempotency_keys (record_id);
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);
CREATE TABLE IF NOT EXISTS deleted_records (record_id TEXT PRIMARY KEY, deleted_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deleted_records_at ON deleted_records (deleted_at);
DROP TABLE IF EXISTS idempotency"""
"""Each claim deletes the expired keys and each delete the old deletions: by index (events round 28: each
keyed write scanned every key of the last 24 h)."""


class Store:
    """A SQLite database whose work runs in a worker thread, one statement batch at a time."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        self._db = open_db(path, list(migrations))
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_IDEMPOTENCY_TABLE)
        self._lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        """Close the database once the work under way is done; later work is refused as `unavailable`."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._db.close()

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in a thread; it is one transaction (rolled back if it raises)."""

        def in_thread() -> T:
            with self._lock:
                if self.closed:
                    raise DomainError("unavailable", "this server was restarted or stopped while the request ran; "
                                      "send it again")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise _busy(exc) from None
                try:
                    result = work(self._db)
                    self._db.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    self._rollback()
                    raise _busy(exc) from None
                except BaseException:
                    self._rollback()
                    raise
                return result

        return await anyio.to_thread.run_sync(in_thread)

    async def forget_freed(self) -> None:
        """Write the log (WAL) into the file and empty it, so what was just deleted or blanked (with `secure_delete`
        on, zeroed in the file) leaves no older copy in the log (personal data purged on schedule; outside review
        attack53: a purged address stayed in 160 log frames until a checkpoint). Best effort: a reader that holds
        the log open leaves it for the next time."""

        def in_thread() -> None:
            with self._lock:
                if not self.closed:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        await anyio.to_thread.run_sync(in_thread)

    def _rollback(self) -> None:
        """Roll back the failed transaction, unless SQLite already did (on SQLITE_FULL, IOERR, NOMEM…):
        a ROLLBACK then raises 'no transaction is active' and would replace the real cause (review round 2 #7)."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:  # the connection's own failure; the work's error is the one to tell
                pass


def _busy(exc: sqlite3.OperationalError) -> Exception:
    """A database another writer held past the busy timeout is a retryable `unavailable` (nothing was
    written: the transaction rolled back), not a bug; any other operational error stays what it is."""
    if "locked" in str(exc) or "busy" in str(exc):
        return DomainError("unavailable", "the server's database is busy with another writer (locked); nothing was "
                           "written: try again shortly", retry_after_s=1.0)
    return exc


def close_stores(root: object, depth: int = 4) -> int:
    """Close every `Store` reachable from `root` through the attributes of this project's objects
    (`servers.*`: a backend, its webhook intake and event log, the idempotency ledger), `depth` levels
    down; how many. A server object replaced by a restart left its SQLite files open, one more set per
    restart (re-check 19 #3)."""
    seen: set[int] = set()
    closed = 0

    def walk(value: object, left: int) -> None:
        nonlocal closed
        if id(value) in seen or left < 0:
            return
        seen.add(id(value))
        if isinstance(value, Store):
            if not value.closed:
                value.close()
                closed += 1
            return
        if isinstance(value, (list, tuple)):
            for item in value[:64]:  # keepers, processors; never a big table of values
                walk(item, left - 1)
            return
        if not type(value).__module__.startswith("servers.") and left != depth:
            return
        for attribute in list(getattr(value, "__dict__", {}).values()):
            walk(attribute, left - 1)

    walk(root, depth)
    return closed
