"""Document writes, each one transaction that decides against the row as it is when it writes.

An ingest reads the document it would replace, then chunks and embeds (seconds for a long text)
before writing; another caller may create, replace, retag or delete that document meanwhile (outside
review: a slow ingest replaced a document another caller created meanwhile, and both answered
`created` with one id). So the owner rule (`Writer.check`) and the answer's status are decided again
inside the write transaction (`Store.run` is `BEGIN IMMEDIATE`), never from what was read before;
so are tags and a date left out ("keep them"): the ones stored then are kept, not those read before.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sqlite3
import unicodedata
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from servers.kit.errors import DomainError
from servers.memory.chunking import Chunk
from servers.memory.model import Document, Ingested
from servers.memory.search import to_blob
from servers.memory.sequences import next_seq
from servers.memory.words import index_text

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Writer:
    """Who writes a document: `owner` (a qualified principal; None: the local operator) and whether
    they hold the domain's admin scope. Documents are a shared knowledge base, but replacing,
    retagging or deleting one another caller ingested needs the admin scope (outside reviews: a
    writer replaced another's document by re-ingesting its source URI, or by deleting it first)."""

    owner: str | None
    admin: bool

    def check(self, existing: sqlite3.Row, doing: str = "replacing or retagging",
              instead: str = "Ingest yours under another source_uri or title.") -> None:
        # An owner of None is the local operator's (or from before owners were kept): not anyone's to claim.
        if not self.admin and existing["owner"] != self.owner:
            raise DomainError("forbidden", f"document {existing['title']!r} was ingested by another caller; {doing} "
                              f"it needs the admin scope. {instead}", details={"document_id": existing["id"]})


SERVER_SCHEMES = ("file", "title")
"""Schemes of identities only the server derives: `file:` for a file it read itself (`path`, folder jobs),
`title:` for a document without a source."""
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.\-]*)\s*:")


def check_caller_source(source: str | None) -> None:
    """Refuse a caller's `source_uri` in a namespace the server derives (`SERVER_SCHEMES`): a `file:` URI would
    show the caller's text as a server file's and lock its real ingest out (outside review memory26 D1), a
    `title:` one would take another document's title."""
    if source is None:
        return
    found = _SCHEME.match(unicodedata.normalize("NFKC", source))
    if found is not None and found.group(1).lower() in SERVER_SCHEMES:
        raise DomainError("invalid_argument", f"source_uri may not be a {found.group(1).lower()}: address: those are given "
                          "only by the server (a file:// source is the file the server read itself). For a file inside "
                          "MEMORY_ALLOWED_PATHS give path instead; for text you send, leave source_uri out or use where it "
                          "came from (e.g. an https:// URL)", details={"field": "source_uri"})


def may_refresh(p: Prepared, row: sqlite3.Row) -> bool:
    """Whether `p` only refreshes `row` from the server file it was read from (`from_file`) and keeps its tags and
    date: the text is the file's, not the writer's, so any writer may (a first reader must not lock the file)."""
    return p.from_file and kept(row, p.tags, p.date) == (json.loads(row["tags"]), row["doc_date"])


@dataclass(frozen=True)
class Prepared:
    """A document chunked and embedded, not yet written (`DocumentStore.prepare` -> `commit`)."""

    title: str
    characters: int
    source: str | None
    identity: str
    digest: str
    tags: list[str] | None
    """None: keep the tags stored when it is written (read then, not when it was prepared)."""
    date: str | None
    """None: keep the stored date, likewise."""
    chunks: list[Chunk]
    vectors: np.ndarray
    against: str | None = None
    """The id of the stored document it was prepared to replace (None: there was none)."""
    writer: Writer | None = None
    from_file: bool = False
    """Read by the server from the file of its `file:` identity, under that file's own title (`may_refresh`)."""
    words: list[tuple[str, str, str]] | None = None
    """Per chunk, its FTS row (title, heading, text) as `index_text`, made before the write transaction."""


@dataclass(frozen=True)
class Written:
    """What a write stored: the row now, and the chunk ids it removed and added (for the vector index)."""

    answer: Ingested
    removed: list[int]
    added: list[int]


def document(row: sqlite3.Row, tags: list[str]) -> Document:
    return Document(id=row["id"], title=row["title"], source=row["source"], tags=tags, content_hash=row["content_hash"],
                    chunks=row["chunk_count"], characters=row["characters"], date=row["doc_date"], ingested_at=row["ingested_at"])


def stored(db: sqlite3.Connection, identity: str) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM documents WHERE identity = ?", (identity,)).fetchone()


def outcome(before: sqlite3.Row | None, after: sqlite3.Row, tags: list[str]) -> Ingested:
    """The answer for a write that turned `before` (None: no document) into `after`."""
    if before is None:
        return Ingested(document=document(after, tags), status="created")
    changed: list[Any] = [field for field, old, new in (
        ("content", before["content_hash"], after["content_hash"]), ("title", before["title"], after["title"]),
        ("tags", json.loads(before["tags"]), tags), ("date", before["doc_date"], after["doc_date"])) if old != new]
    status = ("replaced" if "content" in changed else "updated" if "date" in changed else "retagged" if changed else "unchanged")
    return Ingested(document=document(after, tags), status=status, changed=changed)


def kept(row: sqlite3.Row | None, tags: list[str] | None, date: str | None) -> tuple[list[str], str | None]:
    """The tags and date to write: those given, else (None) the ones `row` holds now. Read inside the write
    transaction, so a retag that landed while this write was being prepared is kept (outside review: a
    slow re-ingest that left tags out wrote back the tags it had read before embedding)."""
    return (tags if tags is not None else json.loads(row["tags"]) if row is not None else [],
            date if date is not None else row["doc_date"] if row is not None else None)


def relabel(db: sqlite3.Connection, identity: str, digest: str, tags: list[str] | None, date: str | None,
            writer: Writer | None) -> Ingested:
    """New tags and date (None: keep) for a document whose stored content is `digest` (no re-embedding)."""
    row = stored(db, identity)
    if row is None or row["content_hash"] != digest:
        raise DomainError("conflict", "the document was replaced or deleted by another call while this one ran: call again "
                          "to apply yours", details={"document_id": row["id"] if row is not None else None})
    tags, date = kept(row, tags, date)
    if json.loads(row["tags"]) == tags and row["doc_date"] == date:
        return outcome(row, row, tags)
    if writer is not None:
        writer.check(row)
    db.execute("UPDATE documents SET tags = ?, doc_date = ? WHERE id = ?", (json.dumps(tags), date, row["id"]))
    db.execute("DELETE FROM doc_tags WHERE document_id = ?", (row["id"],))
    db.executemany("INSERT INTO doc_tags VALUES (?, ?)", [(row["id"], t) for t in tags])
    return outcome(row, db.execute("SELECT * FROM documents WHERE id = ?", (row["id"],)).fetchone(), tags)


def write_prepared(db: sqlite3.Connection, p: Prepared, now: _dt.datetime) -> Written:
    """Store `p` whole (row, tags, chunks, vectors, FTS rows), replacing the stored version of its
    identity whole, once its writer may; the same content written meanwhile is only relabelled."""
    row = stored(db, p.identity)
    if row is not None and p.writer is not None and not may_refresh(p, row):
        p.writer.check(row, "replacing or retagging" if row["id"] == p.against else
                       "replacing it (it was written while yours was being indexed)")
    if row is not None and row["content_hash"] == p.digest:
        return Written(relabel(db, p.identity, p.digest, p.tags, p.date, p.writer), [], [])
    tag_list, date = kept(row, p.tags, p.date)
    tags, removed = json.dumps(tag_list), []
    if row is not None:
        doc_id = row["id"]
        removed = [r["id"] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc_id,))]
        db.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(i,) for i in removed])
        db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        db.execute("UPDATE documents SET title=?, source=?, tags=?, content_hash=?, characters=?, chunk_count=?, doc_date=?, "
                   "ingested_at=? WHERE id=?", (p.title, p.source, tags, p.digest, p.characters, len(p.chunks), date,
                                                 now.isoformat(), doc_id))  # its owner, created_at and seq stay
    else:
        doc_id = uuid.uuid4().hex[:16]
        db.execute("INSERT INTO documents (id, identity, title, source, tags, content_hash, characters, chunk_count, doc_date, "
                   "ingested_at, owner, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (doc_id, p.identity, p.title, p.source, tags, p.digest, p.characters, len(p.chunks), date, now.isoformat(),
                    p.writer.owner if p.writer else None, now.isoformat(), next_seq(db, "documents")))
    db.execute("DELETE FROM doc_tags WHERE document_id = ?", (doc_id,))
    db.executemany("INSERT INTO doc_tags VALUES (?, ?)", [(doc_id, t) for t in tag_list])
    added = []
    title = index_text(p.title)
    words = p.words or [(title, index_text(c.heading), index_text(c.text)) for c in p.chunks]
    for chunk, vector, (fts_title, fts_heading, fts_text) in zip(p.chunks, p.vectors, words, strict=True):
        cursor = db.execute("INSERT INTO chunks (document_id, position, heading, text, vector) VALUES (?, ?, ?, ?, ?)",
                            (doc_id, chunk.position, chunk.heading, chunk.text, to_blob(vector)))
        added.append(int(cursor.lastrowid or 0))
        db.execute("INSERT INTO chunk_fts (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
                   (cursor.lastrowid, fts_title, fts_heading, fts_text))
    after = db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return Written(outcome(row, after, tag_list), removed, added)
