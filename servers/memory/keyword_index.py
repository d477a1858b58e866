"""The FTS tables' migration to the memory domain's own word split (servers/memory/words.py).

The tables are made again with the new tokenizer by a migration (`MIGRATION`), which also marks them to be
refilled; `refill` then writes every memory, chunk and entity into them again, in `index_text` form, once, at
the next start (a migration is SQL only, and the split is Python). Until then keyword search finds nothing
of the old rows, so the service refills before it serves anything.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from servers.memory.words import TOKENIZER, index_text

MIGRATION = f"""DROP TABLE memory_fts; DROP TABLE chunk_fts; DROP TABLE entity_fts;
CREATE VIRTUAL TABLE memory_fts USING fts5(content, tags, tokenize="{TOKENIZER}");
CREATE VIRTUAL TABLE chunk_fts USING fts5(title, heading, text, tokenize="{TOKENIZER}");
CREATE VIRTUAL TABLE entity_fts USING fts5(name, entity_type, observations, tokenize="{TOKENIZER}");
CREATE TABLE fts_refill (pending INTEGER NOT NULL); INSERT INTO fts_refill VALUES (1)"""


def refill(path: Path) -> None:
    """Write every row into the FTS tables again if `MIGRATION` asked for it (one transaction; a second server
    opening the same database at once waits for it, then finds nothing left to do)."""
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        if db.execute("SELECT 1 FROM fts_refill").fetchone() is None:
            db.execute("COMMIT")
            return
        for table in ("memory_fts", "chunk_fts", "entity_fts"):
            db.execute(f"DELETE FROM {table}")
        db.executemany("INSERT INTO memory_fts (rowid, content, tags) VALUES (?, ?, ?)", (
            (rowid, index_text(content), index_text(" ".join(json.loads(tags))))
            for rowid, content, tags in db.execute("SELECT rowid, content, tags FROM memories").fetchall()))
        db.executemany("INSERT INTO chunk_fts (rowid, title, heading, text) VALUES (?, ?, ?, ?)", (
            (ident, index_text(title), index_text(heading), index_text(text)) for ident, title, heading, text in db.execute(
                "SELECT c.id, d.title, c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.document_id").fetchall()))
        observations: dict[str, list[str]] = {}
        for entity, content in db.execute("SELECT entity, content FROM observations ORDER BY id"):
            observations.setdefault(entity, []).append(content)
        db.executemany("INSERT INTO entity_fts (rowid, name, entity_type, observations) VALUES (?, ?, ?, ?)", (
            (rowid, index_text(name), index_text(kind), index_text(f"{name} ({kind}): " + "; ".join(observations.get(name, []))))
            for rowid, name, kind in db.execute("SELECT rowid, name, entity_type FROM entities WHERE vector IS NOT NULL").fetchall()))
        db.execute("DELETE FROM fts_refill")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
