"""Long-term memories: facts, preferences and notes kept per scope (user, agent, project).

Scopes are isolation, not a filter a caller may widen: every read, search, update and delete is
restricted to the exact scope given. `remember` merges near-duplicates within a scope (same text
once normalised, or cosine >= `DUPLICATE_COSINE`) into the existing memory and returns its id.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.store import Store
from servers.memory.embedding import Embedder
from servers.memory.model import Forgotten, Kind, Memory, MemoryHit, MemoryList, Mode, Recall, Remembered, Scope
from servers.memory.search import from_blob, fts_query, fuse, to_blob
from servers.memory.vectors import VectorIndex

if TYPE_CHECKING:
    import numpy as np

DUPLICATE_COSINE = 0.92
CANDIDATES = 50


def _group(scope_key: str) -> int:
    return int.from_bytes(hashlib.blake2b(scope_key.encode(), digest_size=7).digest(), "big")


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!")


def _memory(row: sqlite3.Row) -> Memory:
    return Memory(id=row["id"], content=row["content"], kind=row["kind"],
                  scope=Scope(user=row["user"] or None, agent=row["agent"] or None, project=row["project"] or None),
                  tags=json.loads(row["tags"]), source=row["source"], metadata=json.loads(row["metadata"]),
                  created_at=row["created_at"], updated_at=row["updated_at"], version=str(row["version"]))


class MemoryBank:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self.index = VectorIndex(embedder.dimensions)
        self._loaded = False
        self._lock = anyio.Lock()

    async def _vectors(self) -> VectorIndex:
        if not self._loaded:
            import numpy as np

            rows = await self.store.run(lambda db: db.execute("SELECT rowid, scope_key, vector FROM memories").fetchall())
            if rows:
                self.index.add([r["rowid"] for r in rows], np.vstack([from_blob(r["vector"]) for r in rows]),
                               [_group(r["scope_key"]) for r in rows])
            self._loaded = True
        return self.index

    async def _embed(self, text: str) -> np.ndarray:
        return (await anyio.to_thread.run_sync(self.embedder.embed, [text]))[0]

    async def remember(self, content: str, kind: Kind, scope: Scope, tags: list[str], source: str | None,
                       metadata: dict[str, Any]) -> Remembered:
        if not content.strip():
            raise DomainError("invalid_argument", "content is empty", details={"field": "content"})
        vector = await self._embed(content)
        key = scope.key()
        async with self._lock:  # dedupe check and insert are one step per process
            index = await self._vectors()
            nearest = index.search(vector, 5, group=_group(key))
            now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

            def write(db: sqlite3.Connection) -> tuple[sqlite3.Row, bool, float | None]:
                same = db.execute("SELECT * FROM memories WHERE scope_key = ? AND normal = ?", (key, _normal(content))).fetchone()
                similarity = 1.0 if same is not None else None
                if same is None:
                    for rowid, cosine in nearest:
                        if cosine >= DUPLICATE_COSINE:
                            same = db.execute("SELECT * FROM memories WHERE rowid = ? AND scope_key = ?", (rowid, key)).fetchone()
                            similarity = cosine
                            break
                if same is not None:
                    merged_tags = sorted(set(json.loads(same["tags"])) | set(tags))
                    merged_meta = {**json.loads(same["metadata"]), **metadata}
                    db.execute("UPDATE memories SET tags=?, metadata=?, source=COALESCE(?, source), updated_at=?, version=version+1 "
                               "WHERE rowid=?", (json.dumps(merged_tags), json.dumps(merged_meta), source, now, same["rowid"]))
                    db.execute("UPDATE memory_fts SET tags = ? WHERE rowid = ?", (" ".join(merged_tags), same["rowid"]))
                    return db.execute("SELECT * FROM memories WHERE rowid = ?", (same["rowid"],)).fetchone(), True, similarity
                cursor = db.execute(
                    "INSERT INTO memories (id, scope_key, user, agent, project, content, normal, kind, tags, source, metadata, created_at, "
                    "updated_at, version, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                    ("m_" + uuid.uuid4().hex[:16], key, scope.user, scope.agent, scope.project, content, _normal(content), kind,
                     json.dumps(sorted(set(tags))), source, json.dumps(metadata), now, now, to_blob(vector)))
                db.execute("INSERT INTO memory_fts (rowid, content, tags) VALUES (?, ?, ?)", (cursor.lastrowid, content, " ".join(tags)))
                return db.execute("SELECT * FROM memories WHERE rowid = ?", (cursor.lastrowid,)).fetchone(), False, None

            row, merged, similarity = await self.store.run(write)
            if not merged:
                index.add([row["rowid"]], vector[None, :], [_group(key)])
        return Remembered(memory=_memory(row), merged=merged, similarity=round(similarity, 4) if similarity is not None else None)

    async def recall(self, query: str, scope: Scope, kinds: list[Kind] | None, tags: list[str] | None, mode: Mode,
                     limit: int) -> Recall:
        key = scope.key()
        rankings: dict[str, list[int]] = {}
        if mode in ("keyword", "hybrid") and (match := fts_query(query)):
            rows = await self.store.run(lambda db: db.execute(
                "SELECT memory_fts.rowid AS id FROM memory_fts JOIN memories m ON m.rowid = memory_fts.rowid "
                "WHERE memory_fts MATCH ? AND m.scope_key = ? ORDER BY bm25(memory_fts) LIMIT ?", (match, key, CANDIDATES)).fetchall())
            rankings["keyword"] = [r["id"] for r in rows]
        if mode in ("semantic", "hybrid"):
            found = (await self._vectors()).search(await self._embed(query), CANDIDATES, group=_group(key))
            rankings["semantic"] = [i for i, _ in found]
        fused = fuse(rankings)
        rows = await self.store.run(lambda db: {r["rowid"]: r for r in db.execute(
            f"SELECT * FROM memories WHERE scope_key = ? AND rowid IN ({','.join('?' * len(fused))})",
            [key, *[i for i, _, _ in fused]])} if fused else {})
        hits = []
        for ident, score, ranks in fused:
            row = rows.get(ident)
            if row is None:
                continue
            memory = _memory(row)
            if (kinds and memory.kind not in kinds) or (tags and not set(tags) & set(memory.tags)):
                continue
            hits.append(MemoryHit(memory=memory, score=round(score, 6), ranks=ranks))
            if len(hits) == limit:
                break
        return Recall(hits=hits)

    async def get(self, ids: list[str], scope: Scope) -> MemoryList:
        rows = await self.store.run(lambda db: db.execute(
            f"SELECT * FROM memories WHERE scope_key = ? AND id IN ({','.join('?' * len(ids))})", [scope.key(), *ids]).fetchall())
        by_id = {r["id"]: _memory(r) for r in rows}
        return MemoryList(memories=[by_id[i] for i in ids if i in by_id])

    async def recent(self, scope: Scope, limit: int, cursor: str | None) -> MemoryList:
        offset = int(decode_cursor(cursor).get("offset", 0))
        rows = await self.store.run(lambda db: db.execute(
            "SELECT * FROM memories WHERE scope_key = ? ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (scope.key(), limit + 1, offset)).fetchall())
        return MemoryList(memories=[_memory(r) for r in rows[:limit]],
                          next_cursor=encode_cursor({"offset": offset + limit}) if len(rows) > limit else None)

    async def update(self, memory_id: str, scope: Scope, version: str | None, content: str | None, kind: Kind | None,
                     tags: list[str] | None, metadata: dict[str, Any] | None) -> Memory:
        vector = await self._embed(content) if content is not None else None
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

        def write(db: sqlite3.Connection) -> sqlite3.Row:
            row = db.execute("SELECT * FROM memories WHERE id = ? AND scope_key = ?", (memory_id, scope.key())).fetchone()
            if row is None:
                raise DomainError("not_found", f"memory {memory_id!r} does not exist in this scope")
            if version is not None and version != str(row["version"]):
                raise DomainError("conflict", f"memory {memory_id} changed since you read it (version {row['version']}, you sent "
                                  f"{version}); get it again and reapply your change", details={"current_version": str(row["version"])})
            fields: dict[str, Any] = {"updated_at": now}
            if content is not None:
                fields.update(content=content, normal=_normal(content), vector=to_blob(vector))  # type: ignore[arg-type]
            if kind is not None:
                fields["kind"] = kind
            if tags is not None:
                fields["tags"] = json.dumps(sorted(set(tags)))
            if metadata is not None:
                fields["metadata"] = json.dumps(metadata)
            db.execute(f"UPDATE memories SET {', '.join(f'{k} = ?' for k in fields)}, version = version + 1 WHERE rowid = ?",
                       [*fields.values(), row["rowid"]])
            updated = db.execute("SELECT * FROM memories WHERE rowid = ?", (row["rowid"],)).fetchone()
            db.execute("UPDATE memory_fts SET content = ?, tags = ? WHERE rowid = ?",
                       (updated["content"], " ".join(json.loads(updated["tags"])), row["rowid"]))
            return updated

        row = await self.store.run(write)
        if vector is not None:
            (await self._vectors()).add([row["rowid"]], vector[None, :], [_group(row["scope_key"])])
        return _memory(row)

    async def forget(self, scope: Scope, ids: list[str] | None, kinds: list[Kind] | None, tags: list[str] | None,
                     before: _dt.datetime | None) -> Forgotten:
        if not (ids or kinds or tags or before):
            raise DomainError("invalid_argument", "say what to forget: ids, or a filter (kinds, tags, before)")
        clauses, args = ["scope_key = ?"], [scope.key()]
        if ids:
            clauses.append(f"id IN ({','.join('?' * len(ids))})")
            args += ids
        if kinds:
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
            args += kinds
        if before:
            clauses.append("updated_at < ?")
            args.append(before.astimezone(_dt.UTC).isoformat(timespec="seconds"))

        def run(db: sqlite3.Connection) -> list[sqlite3.Row]:
            rows = [r for r in db.execute(f"SELECT rowid, id, tags FROM memories WHERE {' AND '.join(clauses)}", args)
                    if not tags or set(tags) & set(json.loads(r["tags"]))]
            db.executemany("DELETE FROM memory_fts WHERE rowid = ?", [(r["rowid"],) for r in rows])
            db.executemany("DELETE FROM memories WHERE rowid = ?", [(r["rowid"],) for r in rows])
            return rows

        rows = await self.store.run(run)
        (await self._vectors()).remove([r["rowid"] for r in rows])
        return Forgotten(deleted=len(rows), ids=[r["id"] for r in rows])
