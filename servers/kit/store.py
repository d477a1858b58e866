"""The embedded SQLite store every domain uses: one file per domain in the data dir, WAL mode,
versioned migrations at start, queries run off the event loop, and idempotency records."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from hub.datadir import open_db

T = TypeVar("T")

IDEMPOTENCY_TTL_S = 24 * 3600
_IDEMPOTENCY_TABLE = """CREATE TABLE IF NOT EXISTS idempotency (
    principal TEXT NOT NULL, tool TEXT NOT NULL, key TEXT NOT NULL,
    result TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (principal, tool, key))"""


class Store:
    """A SQLite database whose work runs in a worker thread, one statement batch at a time."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        self._db = open_db(path, list(migrations))
        self._db.row_factory = sqlite3.Row
        self._db.execute(_IDEMPOTENCY_TABLE)
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

    async def remembered(self, principal: str, tool: str, key: str) -> dict[str, Any] | None:
        """The stored result of an earlier call with this idempotency key, if still fresh."""

        def read(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(
                "SELECT result FROM idempotency WHERE principal=? AND tool=? AND key=? AND expires_at>?",
                (principal, tool, key, time.time()),
            ).fetchone()
            return json.loads(row["result"]) if row else None

        return await self.run(read)

    async def remember(self, principal: str, tool: str, key: str, result: dict[str, Any]) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (time.time(),))
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                (principal, tool, key, json.dumps(result), time.time() + IDEMPOTENCY_TTL_S),
            )

        await self.run(write)
