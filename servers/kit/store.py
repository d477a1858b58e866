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

T = TypeVar("T")

# Idempotency records (servers/kit/idempotency.py): one row per (principal, tool, key), bound to a
# fingerprint of the call's arguments. `result` is NULL while the first call is still running.
_IDEMPOTENCY_TABLE = """CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal TEXT NOT NULL, tool TEXT NOT NULL, key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, result TEXT, record_id TEXT, deleted INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (principal, tool, key));
CREATE INDEX IF NOT EXISTS idempotency_keys_record ON idempotency_keys (record_id);
CREATE TABLE IF NOT EXISTS deleted_records (record_id TEXT PRIMARY KEY, deleted_at REAL NOT NULL);
DROP TABLE IF EXISTS idempotency"""


class Store:
    """A SQLite database whose work runs in a worker thread, one statement batch at a time."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        self._db = open_db(path, list(migrations))
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_IDEMPOTENCY_TABLE)
        self._lock = threading.Lock()

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in a thread; it is one transaction (rolled back if it raises)."""

        def in_thread() -> T:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result

        return await anyio.to_thread.run_sync(in_thread)
