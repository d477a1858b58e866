"""Snapshots behind `list_events` cursors.

Events are listed earliest first, and a start time is what `update_event` changes most, so a keyset
on it would let an event rescheduled between two pages be skipped or returned twice. The first page
of a listing that does not fit in one page therefore records the walk: the identity of every
occurrence it matched, in order (event id, recurrence id: neither changes when an event or one
occurrence is moved). Its cursors point into that snapshot, and each later page shows those
occurrences as they are now. So a full walk returns each occurrence that matched when it began once,
in the order of that moment, with its current times; one deleted, or moved out of the range or the
query, since is left out; one created since is not in the walk (start a new listing to see it).
Moving a whole series or splitting it gives its later occurrences new identities, so those not yet
returned are left out too.

The embedded store keeps snapshots in its database (cursors survive restarts); provider backends keep
them in the process. Either way a snapshot lasts `WALK_TTL`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from servers.kit.errors import DomainError

WALK_TTL = timedelta(hours=24)
MAX_IN_MEMORY = 500
WALKS_TABLE = "CREATE TABLE event_walks (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, keys TEXT NOT NULL)"
"""The embedded store's migration for the snapshots (`servers.calendar.store`)."""

Key = tuple[str, str]


class Walks:
    """Stores and reads walk snapshots (lists of occurrence identities)."""

    def __init__(self, store: Any | None) -> None:
        self.store = store
        self._memory: dict[str, tuple[datetime, list[Key]]] = {}

    async def put(self, keys: list[Key]) -> str:
        walk_id = os.urandom(12).hex()
        now = datetime.now(UTC)
        if self.store is None:
            for old in [w for w, (at, _) in self._memory.items() if now - at > WALK_TTL][:MAX_IN_MEMORY]:
                del self._memory[old]
            while len(self._memory) >= MAX_IN_MEMORY:
                del self._memory[next(iter(self._memory))]
            self._memory[walk_id] = (now, list(keys))
            return walk_id

        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM event_walks WHERE created_at < ?", ((now - WALK_TTL).isoformat(),))
            db.execute("INSERT INTO event_walks VALUES (?, ?, ?)", (walk_id, now.isoformat(), json.dumps(keys)))

        await self.store.run(run)
        return walk_id

    async def get(self, walk_id: str) -> list[Key]:
        """The snapshot's keys; `invalid_argument` once it expired (or the process that made it ended)."""
        found: list[Key] | None
        if self.store is None:
            entry = self._memory.get(walk_id)
            found = entry[1] if entry is not None and datetime.now(UTC) - entry[0] <= WALK_TTL else None
        else:
            def run(db: sqlite3.Connection) -> list[Key] | None:
                row = db.execute("SELECT keys, created_at FROM event_walks WHERE id = ?", (walk_id,)).fetchone()
                if row is None or datetime.now(UTC) - datetime.fromisoformat(row[1]) > WALK_TTL:
                    return None
                return [(k[0], k[1]) for k in json.loads(row[0])]

            found = await self.store.run(run)
        if found is None:
            raise DomainError("invalid_argument", "this listing's cursor has expired (a walk is kept for 24 hours, by a provider "
                              "backend only while its process runs); list again without cursor", details={"field": "cursor"})
        return found
