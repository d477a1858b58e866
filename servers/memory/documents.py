"""Documents: chunked, embedded and indexed for keyword (FTS5/BM25), semantic (cosine) and hybrid
(reciprocal rank fusion) search.

A document's identity is its source URI, else its file path, else its title. Ingest is idempotent
by content hash (the text, title and chunking settings): an unchanged document with the same tags
and date is a no-op (`unchanged`); new tags or a new date on unchanged content are written without
re-embedding (`retagged`, or `updated` when the date changed) — never dropped; tags or a date
left out keep the stored ones (`[]` clears the tags). A changed document has its chunks, their vectors and their FTS rows replaced
in one transaction, so a search sees the old version or the new one, never a mix. `changed` names
the fields a call changed on an existing document. `ingest` is `prepare` (chunk and embed, with two
embedding batches in flight: servers/memory/pipeline.py) then `commit` (the one transaction); a
folder job calls them apart to embed the next file while writing this one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError, not_found
from servers.kit.store import Store
from servers.memory.chunking import CHUNK_OVERLAP, CHUNK_SIZE, Chunk, chunk_text
from servers.memory.embedding import Embedder
from servers.memory.model import ChunkHit, Document, DocumentDeleted, DocumentList, Ingested, Mode, SearchResults
from servers.memory.pipeline import Progress, embed_batches
from servers.memory.search import (DOCUMENT_RRF_K, from_blob, fts_any, fuse, keyword_coverage, named_words, snippet,
                                   spread_sections, terms, to_blob)
from servers.memory.vectors import VectorIndex

if TYPE_CHECKING:
    import numpy as np

CANDIDATES = 50
COMMON_FLOOR = 1000
FREQUENCY_CACHE = 10_000
"""Most words whose chunk counts are remembered (the cache starts over past it)."""


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


@dataclass(frozen=True)
class Prepared:
    """A document chunked and embedded, not yet written (`DocumentStore.prepare` -> `commit`)."""

    title: str
    characters: int
    source: str | None
    identity: str
    digest: str
    tags: list[str]
    date: str | None
    existing: sqlite3.Row | None
    chunks: list[Chunk]
    vectors: np.ndarray
    owner: str | None = None


def _document(row: sqlite3.Row, tags: list[str]) -> Document:
    return Document(id=row["id"], title=row["title"], source=row["source"], tags=tags, content_hash=row["content_hash"],
                    chunks=row["chunk_count"], characters=row["characters"], date=row["doc_date"], ingested_at=row["ingested_at"])


class DocumentStore:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self.index = VectorIndex(embedder.dimensions)
        self._loaded = False
        self._load_lock = anyio.Lock()
        self._chunk_total: int | None = None
        self._frequency: dict[str, int] = {}
        """Word → chunks holding it (counted up to the common-word limit), until the index changes."""
        self._generation = 0

    async def _vectors(self) -> VectorIndex:
        """The chunk vectors, read from SQLite on first use."""
        async with self._load_lock:
            if not self._loaded:
                import numpy as np

                def read(db: sqlite3.Connection) -> tuple[list[int], np.ndarray]:
                    rows = db.execute("SELECT id, vector FROM chunks").fetchall()
                    matrix = np.vstack([from_blob(r["vector"]) for r in rows]) if rows else np.zeros((0, self.index.dimensions), np.float32)
                    return [r["id"] for r in rows], matrix

                ids, matrix = await self.store.run(read)
                self.index.add(ids, matrix)
                self._loaded = True
        return self.index

    async def ingest(self, title: str, text: str, source: str | None, tags: list[str] | None, date: _dt.date | None,
                     size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP, progress: Progress | None = None,
                     writer: Writer | None = None) -> Ingested:
        prepared = await self.prepare(title, text, source, tags, date, size, overlap, progress, writer=writer)
        return prepared if isinstance(prepared, Ingested) else await self.commit(prepared)

    async def prepare(self, title: str, text: str, source: str | None, tags: list[str] | None, date: _dt.date | None,
                      size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP, progress: Progress | None = None,
                      submitted: Callable[[], None] | None = None, writer: Writer | None = None) -> Ingested | Prepared:
        """Everything before the write: the finished result when the content is unchanged (or only its
        tags or date changed), else the chunks and their vectors for `commit`. Nothing of the new
        content is stored yet. `submitted()` is called once the last embedding batch has started."""
        if not text.strip():
            raise DomainError("invalid_argument", f"document {title!r} has no text to index", details={"field": "text"})
        identity = source or f"title:{title}"
        digest = hashlib.sha256(f"{size}:{overlap}:{title}\n{text}".encode()).hexdigest()
        existing = await self.store.run(lambda db: db.execute("SELECT * FROM documents WHERE identity = ?", (identity,)).fetchone())
        # Left out (None), tags and date keep what is stored: a re-ingest that only refreshes the text
        # must not drop the document out of its tags (outside review); [] clears the tags.
        unique_tags = sorted(set(tags)) if tags is not None else json.loads(existing["tags"]) if existing is not None else []
        new_date = date.isoformat() if date else existing["doc_date"] if existing is not None else None  # left out: kept
        if existing is not None and existing["content_hash"] == digest:
            changed: list[Any] = [f for f, same in (("tags", json.loads(existing["tags"]) == unique_tags),
                                                    ("date", existing["doc_date"] == new_date)) if not same]
            if not changed:
                return Ingested(document=_document(existing, unique_tags), status="unchanged")
            if writer is not None:
                writer.check(existing)
            return Ingested(document=await self._relabel(existing["id"], unique_tags, new_date), changed=changed,
                            status="updated" if "date" in changed else "retagged")
        if existing is not None and writer is not None:
            writer.check(existing)
        chunks = chunk_text(text, size, overlap)
        texts = [f"{title}. {c.heading}. {c.text}" if c.heading else f"{title}. {c.text}" for c in chunks]
        vectors = await embed_batches(self.embedder, texts, progress, title, submitted)
        return Prepared(title=title, characters=len(text), source=source, identity=identity, digest=digest, tags=unique_tags,
                        date=new_date, existing=existing, chunks=chunks, vectors=vectors, owner=writer.owner if writer else None)

    async def commit(self, prepared: Prepared) -> Ingested:
        """Store a prepared document in one transaction: its row, tags, chunks, vectors and FTS rows,
        replacing an earlier version's whole (a search sees the old version or the new one)."""
        p = prepared
        index = await self._vectors()
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        tags = json.dumps(p.tags)

        def write(db: sqlite3.Connection) -> tuple[sqlite3.Row, list[int], list[int]]:
            row = db.execute("SELECT id FROM documents WHERE identity = ?", (p.identity,)).fetchone()
            old: list[int] = []
            if row is not None:
                doc_id = row["id"]
                old = [r["id"] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc_id,))]
                db.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(i,) for i in old])
                db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
                db.execute("UPDATE documents SET title=?, source=?, tags=?, content_hash=?, characters=?, chunk_count=?, doc_date=?, "
                           "ingested_at=? WHERE id=?", (p.title, p.source, tags, p.digest, p.characters, len(p.chunks), p.date,
                                                         now.isoformat(), doc_id))  # its owner stays who first ingested it
            else:
                doc_id = uuid.uuid4().hex[:16]
                db.execute("INSERT INTO documents (id, identity, title, source, tags, content_hash, characters, chunk_count, doc_date, "
                           "ingested_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (doc_id, p.identity, p.title, p.source, tags, p.digest, p.characters, len(p.chunks), p.date, now.isoformat(),
                            p.owner))
            db.execute("DELETE FROM doc_tags WHERE document_id = ?", (doc_id,))
            db.executemany("INSERT INTO doc_tags VALUES (?, ?)", [(doc_id, t) for t in p.tags])
            new = []
            for chunk, vector in zip(p.chunks, p.vectors, strict=True):
                cursor = db.execute("INSERT INTO chunks (document_id, position, heading, text, vector) VALUES (?, ?, ?, ?, ?)",
                                    (doc_id, chunk.position, chunk.heading, chunk.text, to_blob(vector)))
                new.append(int(cursor.lastrowid or 0))
                db.execute("INSERT INTO chunk_fts (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
                           (cursor.lastrowid, p.title, chunk.heading, chunk.text))
            return db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone(), old, new

        saved, old, new = await self.store.run(write)
        self._changed()
        index.remove(old)
        index.add(new, p.vectors)
        existing = p.existing
        if existing is None:
            return Ingested(document=_document(saved, p.tags), status="created")
        replaced: list[Any] = ["content", *(f for f, before, after in (("title", existing["title"], p.title),
                                                                       ("tags", json.loads(existing["tags"]), p.tags),
                                                                       ("date", existing["doc_date"], p.date)) if before != after)]
        return Ingested(document=_document(saved, p.tags), status="replaced", changed=replaced)

    async def _relabel(self, document_id: str, tags: list[str], date: str | None) -> Document:
        """New tags and date for a document whose content is unchanged (no re-embedding)."""
        def write(db: sqlite3.Connection) -> sqlite3.Row:
            db.execute("UPDATE documents SET tags = ?, doc_date = ? WHERE id = ?", (json.dumps(tags), date, document_id))
            db.execute("DELETE FROM doc_tags WHERE document_id = ?", (document_id,))
            db.executemany("INSERT INTO doc_tags VALUES (?, ?)", [(document_id, t) for t in tags])
            return db.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()

        return _document(await self.store.run(write), tags)

    async def _keyword_terms(self, query: str) -> dict[str, int]:
        """The words of `query` for its FTS5 query (→ how many chunks hold each), without words so
        common that they cannot rank anything.

        A word found in more than a tenth of all chunks (and in more than `COMMON_FLOOR`) has a BM25
        weight near zero, yet scoring its postings is most of a query's time on a large index; it is
        left out whenever the query has other words. Counting stops at the threshold, so a probe is
        cheap; counts are cached until the index changes (at most `FREQUENCY_CACHE`).
        """
        words = list(dict.fromkeys(terms(query)))
        if not words:
            return {}
        limit = max(COMMON_FLOOR, await self._total() // 10)

        cached, generation = self._frequency, self._generation

        def probe(db: sqlite3.Connection) -> dict[str, int]:
            # Its own dict: an ingest or delete may clear the shared cache while this runs.
            return {word: found if (found := cached.get(word)) is not None else db.execute(
                "SELECT count(*) FROM (SELECT rowid FROM chunk_fts WHERE chunk_fts MATCH ? LIMIT ?)",
                (f'"{word}"', limit + 1)).fetchone()[0] for word in words}

        counts = await self.store.run(probe)
        if generation == self._generation:  # counts of an index that changed meanwhile are not kept
            if len(self._frequency) + len(counts) > FREQUENCY_CACHE:
                self._frequency.clear()
            self._frequency.update(counts)
        kept = {word: found for word, found in counts.items() if found <= limit}
        return kept or counts

    async def _coverage(self, frequency: dict[str, int], chunk_id: int, named: set[str]) -> float:
        """`keyword_coverage` of the chunk `chunk_id` for a query of these words."""
        def held(db: sqlite3.Connection) -> set[str]:
            return {word for word in frequency if db.execute(
                "SELECT 1 FROM chunk_fts WHERE chunk_fts MATCH ? AND rowid = ?", (f'"{word}"', chunk_id)).fetchone()}

        return keyword_coverage(frequency, await self.store.run(held), await self._total(), named)

    async def _total(self) -> int:
        if self._chunk_total is None:
            self._chunk_total = await self.store.run(lambda db: db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        return self._chunk_total

    def _changed(self) -> None:
        self._chunk_total = None
        self._generation += 1
        self._frequency = {}

    async def search(self, query: str, mode: Mode, tags: list[str] | None, since: _dt.date | None, until: _dt.date | None,
                     limit: int) -> SearchResults:
        if not query.strip():
            raise DomainError("invalid_argument", "query is empty", details={"field": "query"})
        filters, args = [], []
        if tags:
            filters.append(f"c.document_id IN (SELECT document_id FROM doc_tags WHERE tag IN ({','.join('?' * len(tags))}))")
            args += tags
        if since:
            filters.append("COALESCE(d.doc_date, substr(d.ingested_at, 1, 10)) >= ?")
            args.append(since.isoformat())
        if until:
            filters.append("COALESCE(d.doc_date, substr(d.ingested_at, 1, 10)) <= ?")
            args.append(until.isoformat())
        where = (" AND " + " AND ".join(filters)) if filters else ""
        depth = max(CANDIDATES, limit)
        rankings: dict[str, list[int]] = {}
        scores: dict[str, dict[int, float]] = {}
        weights: dict[str, float] = {}
        if mode in ("keyword", "hybrid") and (frequency := await self._keyword_terms(query)):
            match = fts_any(frequency)
            def keyword(db: sqlite3.Connection) -> list[tuple[int, float]]:
                joins = " JOIN chunks c ON c.id = chunk_fts.rowid JOIN documents d ON d.id = c.document_id" if filters else ""
                sql = (f"SELECT chunk_fts.rowid AS id, bm25(chunk_fts, 2.0, 1.5, 1.0) AS rank FROM chunk_fts{joins} "
                       f"WHERE chunk_fts MATCH ?{where} ORDER BY rank LIMIT ?")
                return [(r["id"], -r["rank"]) for r in db.execute(sql, [match, *args, depth])]

            found = await self.store.run(keyword)
            rankings["keyword"] = [i for i, _ in found]
            scores["keyword"] = dict(found)
            if mode == "hybrid" and found:
                weights["keyword"] = await self._coverage(frequency, found[0][0], named_words(query))
        if mode in ("semantic", "hybrid"):
            allowed = None
            if filters:
                rows = await self.store.run(lambda db: db.execute(
                    f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE 1=1{where}", args).fetchall())
                allowed = {r["id"] for r in rows}
            vector = (await anyio.to_thread.run_sync(self.embedder.embed, [query]))[0]
            found_vectors = (await self._vectors()).search(vector, depth, allowed=allowed)
            rankings["semantic"] = [i for i, _ in found_vectors]
            scores["semantic"] = dict(found_vectors)
        fused = fuse(rankings, DOCUMENT_RRF_K, weights)
        if mode == "hybrid" and len(fused) > 1:
            # Which section each candidate is in, so one section's many chunks cannot fill the top. A
            # document without headings is not one section: its chunks are left as fused.
            sections = await self.store.run(lambda db: {r["id"]: (r["document_id"], r["heading"]) for r in db.execute(
                f"SELECT id, document_id, heading FROM chunks WHERE id IN ({','.join('?' * len(fused))}) AND heading != ''",
                [i for i, _, _ in fused])})
            fused = spread_sections(fused, sections)
        fused = fused[:limit]
        rows = await self.store.run(lambda db: {r["id"]: r for r in db.execute(
            f"SELECT c.id, c.document_id, c.heading, c.text, d.title, d.source FROM chunks c JOIN documents d ON d.id = c.document_id "
            f"WHERE c.id IN ({','.join('?' * len(fused))})", [i for i, _, _ in fused])} if fused else {})
        hits = []
        for ident, fused_score, ranks in fused:
            row = rows.get(ident)
            if row is None:  # replaced while we searched
                continue
            score = fused_score if mode == "hybrid" else scores[mode][ident]
            hits.append(ChunkHit(chunk_id=ident, document_id=row["document_id"], title=row["title"], source=row["source"],
                                 heading=row["heading"], snippet=snippet(row["text"], query), text=row["text"], score=round(score, 6),
                                 ranks=ranks))
        return SearchResults(mode=mode, hits=hits)

    async def list(self, tags: list[str] | None, limit: int, cursor: str | None) -> DocumentList:
        offset = int(decode_cursor(cursor).get("offset", 0))

        def run(db: sqlite3.Connection) -> DocumentList:
            sql, args = "SELECT * FROM documents", []
            if tags:
                sql += f" WHERE id IN (SELECT document_id FROM doc_tags WHERE tag IN ({','.join('?' * len(tags))}))"
                args += tags
            rows = db.execute(sql + " ORDER BY ingested_at DESC, id LIMIT ? OFFSET ?", [*args, limit + 1, offset]).fetchall()
            docs = [_document(r, json.loads(r["tags"])) for r in rows[:limit]]
            return DocumentList(documents=docs, next_cursor=encode_cursor({"offset": offset + limit}) if len(rows) > limit else None)

        return await self.store.run(run)

    async def delete(self, document_id: str, writer: Writer) -> DocumentDeleted:
        def run(db: sqlite3.Connection) -> list[int]:
            existing = db.execute("SELECT id, title, owner FROM documents WHERE id = ?", (document_id,)).fetchone()
            if existing is None:
                raise not_found("document", document_id)
            writer.check(existing, "deleting", "Ask its writer or an admin.")
            ids = [r["id"] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,))]
            db.executemany("DELETE FROM chunk_fts WHERE rowid = ?", [(i,) for i in ids])
            for table, column in (("chunks", "document_id"), ("doc_tags", "document_id"), ("documents", "id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (document_id,))
            return ids

        removed = await self.store.run(run)
        self._changed()
        (await self._vectors()).remove(removed)
        return DocumentDeleted(id=document_id, chunks=len(removed))

    async def stats(self) -> dict[str, Any]:
        return await self.store.run(lambda db: {"documents": db.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
                                                "chunks": db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]})
