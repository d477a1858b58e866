"""Positions for keyset paging that only ever grow: `documents.seq` (one sequence for the shared
knowledge base) and `memories.seq` (one per scope, so a memory's position says nothing about other
users' memories).

A walk pages on `seq < cursor`, newest first; a number is never handed out twice (the counter is
kept apart from the rows, so deleting the newest rows does not let a new row take a number below a
walk's cursor). Timestamps could not do this: `created_at` has whole seconds, and a document made in
the same second as a page's last row, with a smaller random id, sorted after the cursor (outside review)."""

from __future__ import annotations

import sqlite3

MIGRATION = """CREATE TABLE sequences (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
ALTER TABLE documents ADD COLUMN seq INTEGER;
UPDATE documents SET seq = r.n FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM documents) AS r
    WHERE r.id = documents.id;
CREATE UNIQUE INDEX documents_seq ON documents(seq);
INSERT INTO sequences SELECT 'documents', coalesce(max(seq), 0) FROM documents;
ALTER TABLE memories ADD COLUMN seq INTEGER;
UPDATE memories SET seq = w.n FROM (SELECT rowid AS r, row_number() OVER (PARTITION BY scope_key ORDER BY rowid) AS n
    FROM memories) AS w WHERE w.r = memories.rowid;
CREATE UNIQUE INDEX memories_seq ON memories(scope_key, seq);
INSERT INTO sequences SELECT 'memories:' || scope_key, max(seq) FROM memories GROUP BY scope_key"""


def next_seq(db: sqlite3.Connection, name: str) -> int:
    """The next number of sequence `name` (1 first); call inside the write transaction that uses it."""
    return int(db.execute("INSERT INTO sequences (name, last) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET last = last + 1 "
                          "RETURNING last", (name,)).fetchone()[0])


def memory_sequence(scope_key: str) -> str:
    return "memories:" + scope_key
