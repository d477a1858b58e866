"""Long-term memories: facts, preferences and notes kept per scope (user, agent, project).

Scopes are isolation, not a filter a caller may widen: every read, search, update and delete is
restricted to the exact scope given.

Writes never drop what they were given, and say what they stored:
- `remember` of the same fact as a stored memory (`servers/memory/facts.py`: the same text, the same
  statement with a new value, or the same fact in other words) updates that memory: the newer text
  wins, a kind given replaces the kind (one not given is kept), tags are added, metadata is merged
  as a JSON merge patch, and the source follows the text (a new text carries the source given with
  it). The version it replaces goes to the memory's history. The answer says `created`, `updated`
  (with `replaced_text` and the fields `changed`) or `unchanged` — an exact duplicate changes
  nothing, not even the version. `as_new=true` stores a statement on its own unless it is the same text.
- `update_memory` changes only the fields passed: tags are replaced as a list, metadata is merged as
  a JSON merge patch (`null` removes a key). The old version goes to the history; a call that would
  change nothing leaves the memory and its version as they are and answers it, whatever `version` says
  (a retry of an update that landed holds what it asked); a call with no field is refused; a
  content another memory of the scope already holds (the same text, as `remember` compares it) is a
  `conflict` naming that memory.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from servers.kit.errors import DomainError
from servers.kit.keyset import open_sealed_cursor, query_fingerprint, seal_cursor, store_secret
from servers.kit.store import Store
from servers.kit.text import is_blank
from servers.memory import history
from servers.memory.embedding import Embedder
from servers.memory.facts import FLOOR, Match, best_match, merge_patch, normal, recased
from servers.memory.model import (
    Changed,
    Forgotten,
    Kind,
    Memory,
    MemoryHit,
    MemoryList,
    MemoryVersion,
    Mode,
    Recall,
    Remembered,
    Scope,
    nfc,
)
from servers.memory.recall_rank import ScopeStats, keyword_ranking, memory_filter, scope_stats
from servers.memory.search import from_blob, fuse, to_blob
from servers.memory.sequences import memory_sequence, next_seq
from servers.memory.vectors import VectorIndex
from servers.memory.words import index_text

if TYPE_CHECKING:
    import numpy as np

CANDIDATES = 50
SAME_FACT_CANDIDATES = 5
_SELECT = history.SELECT_MEMORY


def _group(scope_key: str) -> int:
    return int.from_bytes(hashlib.blake2b(scope_key.encode(), digest_size=7).digest(), "big")


def _now() -> str:
    """A memory's `created_at` / `updated_at`: UTC to the microsecond, so `forget(before=T)` and the order of
    writes hold inside a second (outside review writes28 #5). Rows from before, in whole seconds, still sort
    right as text ("…:00+00:00" sorts before "…:00.500000+00:00"): they count as stored at the start of their second."""
    return _instant(_dt.datetime.now(_dt.UTC))


def _instant(moment: _dt.datetime) -> str:
    """`moment` as stored and compared: UTC, always six fraction digits (text order = time order); a time
    without an offset is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.astimezone(_dt.UTC).isoformat(timespec="microseconds")


def _memory(row: sqlite3.Row, versions: list[MemoryVersion] | None = None) -> Memory:
    return Memory(id=row["id"], content=row["content"], kind=row["kind"],
                  scope=Scope(user=row["user"] or None, agent=row["agent"] or None, project=row["project"] or None),
                  tags=json.loads(row["tags"]), source=row["source"], metadata=json.loads(row["metadata"]),
                  created_at=row["created_at"], updated_at=row["updated_at"], version=str(row["version"]),
                  previous_versions=row["previous_versions"], history=versions)


def _memories(db: sqlite3.Connection, rows: list[sqlite3.Row], include_history: bool) -> list[Memory]:
    versions = history.load(db, [r["rowid"] for r in rows]) if include_history else {}
    return [_memory(r, versions.get(r["rowid"]) if include_history else None) for r in rows]


def _apply(db: sqlite3.Connection, row: sqlite3.Row, fields: dict[str, Any], now: str, by: str) -> sqlite3.Row:
    """Keep `row` in the history, write `fields` as the next version, keep the keyword index in step."""
    history.keep(db, row, now, by)
    db.execute(f"UPDATE memories SET {''.join(f'{k} = ?, ' for k in fields)}updated_at = ?, version = version + 1 WHERE rowid = ?",
               [*fields.values(), now, row["rowid"]])
    updated = db.execute(_SELECT + " WHERE m.rowid = ?", (row["rowid"],)).fetchone()
    db.execute("UPDATE memory_fts SET content = ?, tags = ? WHERE rowid = ?",
               (index_text(updated["content"]), index_text(" ".join(json.loads(updated["tags"]))), row["rowid"]))
    return updated


def _changes(row: sqlite3.Row, content: str | None, vector: np.ndarray | None, kind: Kind | None, tags: list[str] | None,
             metadata: dict[str, Any] | None, source: str | None, keep_source: bool) -> tuple[dict[str, Any], list[Changed]]:
    """The columns to write (and the fields they are) to bring `row` to what was asked; nothing if it already is."""
    fields: dict[str, Any] = {}
    changed: list[Changed] = []
    if content is not None and content != row["content"]:
        assert vector is not None, "a new text comes with its vector"
        fields.update(content=content, normal=normal(content), vector=to_blob(vector))
        changed.append("content")
        keep_source = False  # a new text carries its own source
    if kind is not None and kind != row["kind"]:
        fields["kind"] = kind
        changed.append("kind")
    if tags is not None and tags != json.loads(row["tags"]):
        fields["tags"] = json.dumps(tags)
        changed.append("tags")
    old_metadata = json.loads(row["metadata"])
    if metadata is not None and (patched := merge_patch(old_metadata, metadata)) != old_metadata:
        fields["metadata"] = json.dumps(patched)
        changed.append("metadata")
    new_source = row["source"] if keep_source and source is None else source
    if new_source != row["source"]:
        fields["source"] = new_source
        changed.append("source")
    return fields, changed


class MemoryBank:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self.index = VectorIndex(embedder.dimensions)
        self._loaded = False
        self._lock = anyio.Lock()  # a same-fact check and its write, or an update and its vector, are one step
        self._stats = ScopeStats()  # keyword ranking statistics, per scope (servers/memory/recall_rank.py)

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

    @staticmethod
    def _same_fact(db: sqlite3.Connection, key: str, content: str, nearest: list[tuple[int, float]],
                   as_new: bool) -> tuple[sqlite3.Row, Match, float] | None:
        """The stored memory of this scope that states the same fact as `content`, if any (`facts.best_match`)."""
        row = db.execute(_SELECT + " WHERE m.scope_key = ? AND m.normal = ?", (key, normal(content))).fetchone()
        if row is not None:
            return row, "exact", 1.0
        rows = [(r, cosine) for rowid, cosine in nearest if cosine >= FLOOR
                and (r := db.execute(_SELECT + " WHERE m.rowid = ? AND m.scope_key = ?", (rowid, key)).fetchone()) is not None]
        found = best_match(nfc(content), [(nfc(r["content"]), cosine) for r, cosine in rows], exact_only=as_new)
        if found is None:
            return None
        row, cosine = rows[found[0]]
        return row, found[1], cosine

    async def remember(self, content: str, kind: Kind | None, scope: Scope, tags: list[str], source: str | None,
                       metadata: dict[str, Any], as_new: bool = False) -> Remembered:
        """Store `content`, or update the memory of this scope that states the same fact (module docstring)."""
        if is_blank(content):
            raise DomainError("invalid_argument", "content is empty", details={"field": "content"})
        vector = await self._embed(content)
        key = scope.key()
        async with self._lock:
            index = await self._vectors()
            nearest = index.search(vector, SAME_FACT_CANDIDATES, group=_group(key))
            now = _now()

            def write(db: sqlite3.Connection) -> tuple[Remembered, int]:
                found = self._same_fact(db, key, content, nearest, as_new)
                if found is None:
                    cursor = db.execute(
                        "INSERT INTO memories (id, scope_key, user, agent, project, content, normal, kind, tags, source, metadata, "
                        "created_at, updated_at, version, vector, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                        ("m_" + uuid.uuid4().hex[:16], key, scope.user, scope.agent, scope.project, content, normal(content),
                         kind or "fact", json.dumps(sorted(set(tags))), source, json.dumps(merge_patch({}, metadata)), now, now,
                         to_blob(vector), next_seq(db, memory_sequence(key))))
                    db.execute("INSERT INTO memory_fts (rowid, content, tags) VALUES (?, ?, ?)",
                               (cursor.lastrowid, index_text(content), index_text(" ".join(sorted(set(tags))))))
                    row = db.execute(_SELECT + " WHERE m.rowid = ?", (cursor.lastrowid,)).fetchone()
                    return Remembered(memory=_memory(row), action="created", stored_text=content, merged=False), row["rowid"]
                row, match, similarity = found
                same_text = match == "exact" and not recased(row["content"], content)  # a code's case is part of it
                fields, changed = _changes(row, None if same_text else content, vector, kind,
                                           sorted(set(json.loads(row["tags"])) | set(tags)), metadata, source, keep_source=True)
                updated = _apply(db, row, fields, now, "remember") if fields else row
                return Remembered(memory=_memory(updated), action="updated" if fields else "unchanged", stored_text=updated["content"],
                                  replaced_text=row["content"] if "content" in changed else None, changed=changed, match=match,
                                  merged=True, similarity=round(similarity, 4)), row["rowid"]

            answer, rowid = await self.store.run(write)
            self._stats.changed(key)
            if answer.action == "created" or "content" in answer.changed:
                index.add([rowid], vector[None, :], [_group(key)])  # replaces the old text's vector
        return answer

    async def recall(self, query: str, scope: Scope, kinds: list[Kind] | None, tags: list[str] | None, mode: Mode,
                     limit: int, include_history: bool = False) -> Recall:
        key = scope.key()
        rankings: dict[str, list[int]] = {}
        if is_blank(query):
            raise DomainError("invalid_argument", "query is empty", details={"field": "query"})
        if mode in ("keyword", "hybrid"):  # BM25 with this scope's statistics only: others' memories never move it
            generation, cached = self._stats.reader(key)

            def keyword(db: sqlite3.Connection) -> tuple[list[int], tuple[int, float]]:
                stats = cached or scope_stats(db, key)
                return keyword_ranking(db, key, query, CANDIDATES, stats, kinds, tags), stats

            rankings["keyword"], stats = await self.store.run(keyword)
            self._stats.keep(key, generation, stats)
        if mode in ("semantic", "hybrid"):
            allowed = None
            if kinds or tags:  # only the memories the filter lets through are ranked (`memory_filter`)
                where, args = memory_filter(kinds, tags)
                allowed = await self.store.run(lambda db: {r[0] for r in db.execute(
                    f"SELECT m.rowid FROM memories m WHERE m.scope_key = ?{where}", [key, *args])})
            found = (await self._vectors()).search(await self._embed(query), CANDIDATES, group=_group(key), allowed=allowed)
            rankings["semantic"] = [i for i, _ in found]
        fused = fuse(rankings)

        def read(db: sqlite3.Connection) -> list[MemoryHit]:
            if not fused:
                return []
            rows = {r["rowid"]: r for r in db.execute(f"{_SELECT} WHERE m.scope_key = ? AND m.rowid IN ({','.join('?' * len(fused))})",
                                                      [key, *[i for i, _, _ in fused]])}
            picked = []
            for ident, score, ranks in fused:
                row = rows.get(ident)
                if row is None:
                    continue
                if (kinds and row["kind"] not in kinds) or (tags and not set(tags) & set(json.loads(row["tags"]))):
                    continue
                picked.append((row, score, ranks))
                if len(picked) == limit:
                    break
            memories = _memories(db, [row for row, _, _ in picked], include_history)
            return [MemoryHit(memory=m, score=round(score, 6), ranks=ranks) for m, (_, score, ranks) in zip(memories, picked, strict=True)]

        return Recall(hits=await self.store.run(read))

    async def get(self, ids: list[str], scope: Scope, include_history: bool = False) -> MemoryList:
        def read(db: sqlite3.Connection) -> list[Memory]:
            rows = db.execute(f"{_SELECT} WHERE m.scope_key = ? AND m.id IN ({','.join('?' * len(ids))})", [scope.key(), *ids]).fetchall()
            by_id = {m.id: m for m in _memories(db, rows, include_history)}
            return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

        return MemoryList(memories=await self.store.run(read))

    async def recent(self, scope: Scope, limit: int, cursor: str | None) -> MemoryList:
        """A scope's memories, newest first by when each was first saved (an update does not move a memory), paged
        by an opaque keyset cursor bound to the scope: a walk sees every memory that existed when it began exactly
        once, whatever is remembered, updated or forgotten meanwhile (memories saved after it began are not in it).
        The cursor holds the memory's position in its own scope (`seq`), encrypted: nothing about other scopes
        (outside review: it showed the global row id, so the gap between two pages counted others' writes)."""
        key = scope.key()

        def read(db: sqlite3.Connection) -> MemoryList:
            secret, fingerprint = store_secret(db), query_fingerprint("memories:recent", {"scope": key})
            after = open_sealed_cursor(secret, cursor, fingerprint, width=1)
            if after is not None and not isinstance(after[0], int):
                raise DomainError("invalid_argument", "cursor was not issued by list_recent: leave it out to start again",
                                  details={"field": "cursor"})
            rows = db.execute(_SELECT + " WHERE m.scope_key = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?",
                              (key, after[0] if after else 2**63 - 1, limit + 1)).fetchall()
            more = len(rows) > limit
            return MemoryList(memories=[_memory(r) for r in rows[:limit]],
                              next_cursor=seal_cursor(secret, fingerprint, [rows[limit - 1]["seq"]]) if more else None)

        return await self.store.run(read)

    async def update(self, memory_id: str, scope: Scope, version: str | None, content: str | None, kind: Kind | None,
                     tags: list[str] | None, metadata: dict[str, Any] | None) -> Memory:
        """Change only the fields given (module docstring); the replaced version goes to the history."""
        if content is None and kind is None and tags is None and metadata is None:
            raise DomainError("invalid_argument", "nothing to change: give content, kind, tags or metadata (fields you leave out "
                              "are kept)", details={"fields": ["content", "kind", "tags", "metadata"]})
        if content is not None and is_blank(content):
            raise DomainError("invalid_argument", "content is empty", details={"field": "content"})
        vector = await self._embed(content) if content is not None else None
        async with self._lock:
            now = _now()

            def write(db: sqlite3.Connection) -> tuple[sqlite3.Row, bool]:
                row = db.execute(_SELECT + " WHERE m.id = ? AND m.scope_key = ?", (memory_id, scope.key())).fetchone()
                if row is None:
                    raise DomainError("not_found", f"memory {memory_id!r} does not exist in this scope")
                fields, changed = _changes(row, content, vector, kind, sorted(set(tags)) if tags is not None else None, metadata,
                                           row["source"], keep_source=True)
                if not fields:  # it holds what was asked: answered as it is whatever `version` says, as a retry of an
                    return row, False  # update that landed (its answer lost) holds it (outside review r38b #3)
                if version is not None and version != str(row["version"]):
                    raise DomainError("conflict", f"memory {memory_id} changed since you read it (version {row['version']}, you "
                                      f"sent {version}); get it again and reapply your change",
                                      details={"current_version": str(row["version"])})
                if content is not None:
                    twin = db.execute("SELECT id FROM memories WHERE scope_key = ? AND normal = ? AND id != ?",
                                      (scope.key(), normal(content), memory_id)).fetchone()
                    if twin is not None:  # a scope holds a text once, as `remember` keeps it (outside review)
                        raise DomainError("conflict", f"memory {twin['id']} in this scope already holds that text; update or "
                                          f"forget one of the two instead of making {memory_id} a copy of it",
                                          details={"existing_id": twin["id"], "field": "content"})
                return _apply(db, row, fields, now, "update_memory"), "content" in changed

            row, new_text = await self.store.run(write)
            self._stats.changed(scope.key())
            if new_text and vector is not None:
                (await self._vectors()).add([row["rowid"]], vector[None, :], [_group(row["scope_key"])])
        return _memory(row)

    async def forget(self, scope: Scope, ids: list[str] | None, kinds: list[Kind] | None, tags: list[str] | None,
                     before: _dt.datetime | None) -> Forgotten:
        """Delete matching memories with their history (forgetting is for good)."""
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
            try:
                args.append(_instant(before))
            except OverflowError:  # 0001-01-01T00:00+05:00 is before year 1 in UTC (outside review w28b #8)
                raise DomainError("invalid_argument", f"before={before.isoformat()} is outside the years 0001-9999 once "
                                  "converted to UTC; nothing was deleted. Give a time between 0001-01-02T00:00:00Z and "
                                  "9999-12-30T23:59:59Z",
                                  details={"field": "before"}) from None

        def run(db: sqlite3.Connection) -> list[sqlite3.Row]:
            rows = [r for r in db.execute(f"SELECT rowid, id, tags FROM memories WHERE {' AND '.join(clauses)}", args)
                    if not tags or set(tags) & set(json.loads(r["tags"]))]
            db.executemany("DELETE FROM memory_fts WHERE rowid = ?", [(r["rowid"],) for r in rows])
            db.executemany("DELETE FROM memories WHERE rowid = ?", [(r["rowid"],) for r in rows])
            history.drop(db, [r["rowid"] for r in rows])
            return rows

        async with self._lock:
            rows = await self.store.run(run)
            self._stats.changed(scope.key())
            (await self._vectors()).remove([r["rowid"] for r in rows])
        return Forgotten(deleted=len(rows), ids=[r["id"] for r in rows])
