"""A memory's earlier versions. Every write that changes a memory first copies the version it
replaces into `memory_versions` (text, kind, tags, source, metadata, when it was written, when and
by which tool it was replaced), so nothing `remember` or `update_memory` replaces is lost. A write
that changes nothing makes no version. `forget` deletes a memory with its history: forgetting is
for good."""

from __future__ import annotations

import json
import sqlite3

from servers.memory.model import MemoryVersion

MIGRATION = """CREATE TABLE memory_versions (memory_rowid INTEGER NOT NULL, version INTEGER NOT NULL, content TEXT NOT NULL,
    kind TEXT NOT NULL, tags TEXT NOT NULL, source TEXT, metadata TEXT NOT NULL, valid_from TEXT NOT NULL,
    replaced_at TEXT NOT NULL, replaced_by TEXT NOT NULL, PRIMARY KEY (memory_rowid, version))"""

# Every read of memories goes through this, so each answer can say how many earlier versions there are.
SELECT_MEMORY = ("SELECT m.*, (SELECT count(*) FROM memory_versions v WHERE v.memory_rowid = m.rowid) AS previous_versions "
                 "FROM memories m")


def keep(db: sqlite3.Connection, row: sqlite3.Row, replaced_at: str, replaced_by: str) -> None:
    """Store `row` (a memory as it is now) as an earlier version, before it is changed."""
    db.execute("INSERT INTO memory_versions (memory_rowid, version, content, kind, tags, source, metadata, valid_from, replaced_at, "
               "replaced_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (row["rowid"], row["version"], row["content"], row["kind"], row["tags"], row["source"], row["metadata"],
                row["updated_at"], replaced_at, replaced_by))


def load(db: sqlite3.Connection, rowids: list[int]) -> dict[int, list[MemoryVersion]]:
    """The earlier versions of these memories, oldest first."""
    found: dict[int, list[MemoryVersion]] = {r: [] for r in rowids}
    if not rowids:
        return found
    for v in db.execute(f"SELECT * FROM memory_versions WHERE memory_rowid IN ({','.join('?' * len(rowids))}) "
                        "ORDER BY memory_rowid, version", rowids):
        found[v["memory_rowid"]].append(MemoryVersion(
            version=str(v["version"]), content=v["content"], kind=v["kind"], tags=json.loads(v["tags"]), source=v["source"],
            metadata=json.loads(v["metadata"]), valid_from=v["valid_from"], replaced_at=v["replaced_at"],
            replaced_by=v["replaced_by"]))
    return found


def drop(db: sqlite3.Connection, rowids: list[int]) -> None:
    db.executemany("DELETE FROM memory_versions WHERE memory_rowid = ?", [(r,) for r in rowids])
