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
folder job calls them apart to embed the next file while writing this one. Whether the writer may
replace a document, and what the answer says, are decided inside that transaction
(servers/memory/document_writes.py). Titles, sources and tags are compared in NFC.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import anyio

from servers.kit.errors import DomainError, not_found
from servers.kit.keyset import open_sealed_cursor, query_fingerprint, seal_cursor, store_secret
from servers.kit.store import Store
from servers.kit.text import is_blank
from servers.memory.chunking import CHUNK_OVERLAP, CHUNK_SIZE, chunk_text
from servers.memory.document_writes import Prepared, Writer, document, kept, relabel, stored, write_prepared
from servers.memory.embedding import Embedder
from servers.memory.model import ChunkHit, DocumentDeleted, DocumentList, Ingested, Mode, SearchResults, nfc
from servers.memory.pipeline import Progress, embed_batches
from servers.memory.search import (DOCUMENT_RRF_K, from_blob, fts_any, fuse, keyword_coverage, named_words, snippet,
                                   spread_sections, terms)
from servers.memory.vectors import VectorIndex
from servers.memory.words import fts_term, index_text

__all__ = ["DocumentStore", "Prepared", "Writer"]

CANDIDATES = 50
COMMON_FLOOR = 1000
FREQUENCY_CACHE = 10_000
"""Most words whose chunk counts are remembered (the cache starts over past it)."""


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
                     writer: Writer | None = None, from_file: bool = False) -> Ingested:
        prepared = await self.prepare(title, text, source, tags, date, size, overlap, progress, writer=writer, from_file=from_file)
        return prepared if isinstance(prepared, Ingested) else await self.commit(prepared)

    async def prepare(self, title: str, text: str, source: str | None, tags: list[str] | None, date: _dt.date | None,
                      size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP, progress: Progress | None = None,
                      submitted: Callable[[], None] | None = None, writer: Writer | None = None,
                      from_file: bool = False) -> Ingested | Prepared:
        """Everything before the write: the finished result when the content is unchanged (or only its
        tags or date changed), else the chunks and their vectors for `commit`. Nothing of the new
        content is stored yet. `submitted()` is called once the last embedding batch has started."""
        if is_blank(text):
            raise DomainError("invalid_argument", f"document {title!r} has no text to index", details={"field": "text"})
        # Canonically equivalent spellings (NFC/NFD) are one title, one source and one content (outside review);
        # the text is stored as given.
        title, source = nfc(title), nfc(source) if source is not None else None
        identity = source or f"title:{title}"
        digest = hashlib.sha256(f"{size}:{overlap}:{title}\n{nfc(text)}".encode()).hexdigest()
        existing = await self.store.run(lambda db: stored(db, identity))
        # Left out (None), tags and date keep what is stored when it is written: a re-ingest that only refreshes
        # the text must not drop the document out of its tags, nor undo a retag made meanwhile (outside
        # reviews); [] clears the tags.
        unique_tags = sorted({nfc(t) for t in tags}) if tags is not None else None
        new_date = date.isoformat() if date else None
        if existing is not None and existing["content_hash"] == digest:  # the owner rule is checked as it writes
            return await self.store.run(lambda db: relabel(db, identity, digest, unique_tags, new_date, writer))
        if existing is not None and writer is not None and not (
                from_file and kept(existing, unique_tags, new_date) == (json.loads(existing["tags"]), existing["doc_date"])):
            writer.check(existing)  # before the embedding's work; `commit` checks again as it writes (`may_refresh`)
        chunks = chunk_text(text, size, overlap)
        if not chunks:  # headings only: it would be listed, but no search could ever find it (outside review)
            raise DomainError("invalid_argument", f"document {title!r} has headings but no text under them, so nothing to "
                              "search: add the text under its headings", details={"field": "text"})
        texts = [f"{title}. {c.heading}. {c.text}" if c.heading else f"{title}. {c.text}" for c in chunks]
        vectors = await embed_batches(self.embedder, texts, progress, title, submitted)
        words = await anyio.to_thread.run_sync(lambda: [(index_text(title), index_text(c.heading), index_text(c.text)) for c in chunks])
        return Prepared(title=title, characters=len(text), source=source, identity=identity, digest=digest, tags=unique_tags,
                        date=new_date, chunks=chunks, vectors=vectors, against=existing["id"] if existing is not None else None, writer=writer,
                        from_file=from_file, words=words)

    async def commit(self, prepared: Prepared) -> Ingested:
        """Store a prepared document in one transaction: its row, tags, chunks, vectors and FTS rows,
        replacing an earlier version's whole (a search sees the old version or the new one). Whether
        its writer may, and what the answer says, are decided against the row as it is then
        (`servers/memory/document_writes.py`)."""
        index = await self._vectors()
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        written = await self.store.run(lambda db: write_prepared(db, prepared, now))
        if written.added or written.removed:
            self._changed()
            index.remove(written.removed)
            index.add(written.added, prepared.vectors)
        return written.answer

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
                (fts_term(word), limit + 1)).fetchone()[0] for word in words}

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
                "SELECT 1 FROM chunk_fts WHERE chunk_fts MATCH ? AND rowid = ?", (fts_term(word), chunk_id)).fetchone()}

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
        if is_blank(query):
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
        """Documents newest first by when each was first ingested (a re-ingest does not move one), paged by an
        opaque keyset cursor on `seq` (servers/memory/sequences.py) bound to the tags: a walk returns every
        document that existed throughout once and none ingested after it began, whatever is ingested,
        replaced or deleted meanwhile; a cursor from another filter is `invalid_argument`."""
        wanted = sorted({nfc(t) for t in tags or []})

        def run(db: sqlite3.Connection) -> DocumentList:
            secret, fingerprint = store_secret(db), query_fingerprint("documents", {"tags": wanted})
            after = open_sealed_cursor(secret, cursor, fingerprint, width=1)
            if after is not None and not isinstance(after[0], int):
                raise DomainError("invalid_argument", "cursor was not issued by list_documents: leave it out to start again",
                                  details={"field": "cursor"})
            clauses, args = [], []
            if wanted:
                clauses.append(f"id IN (SELECT document_id FROM doc_tags WHERE tag IN ({','.join('?' * len(wanted))}))")
                args += wanted
            if after is not None:
                clauses.append("seq < ?")
                args += after
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = db.execute(f"SELECT * FROM documents{where} ORDER BY seq DESC LIMIT ?", [*args, limit + 1]).fetchall()
            last = rows[limit - 1] if len(rows) > limit else None
            return DocumentList(documents=[document(r, json.loads(r["tags"])) for r in rows[:limit]],
                                next_cursor=seal_cursor(secret, fingerprint, [last["seq"]]) if last else None)

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
