"""A knowledge graph with the reference `@modelcontextprotocol/server-memory` semantics, on SQLite.

Same operations, argument shapes and results as the reference (create entities and relations
skipping duplicates, add observations — an unknown entity is an error —, deletes that cascade to
relations, read/open), so a prompt written for it works unchanged. Differences, on purpose:
`search_nodes` ranks (FTS5 BM25 + embeddings + the reference's substring match, fused) instead of
returning substring matches in file order — every entity the reference would return is still
returned; a relation repeated inside one `create_relations` call is stored once (the reference
stores it twice); `neighbors` walks edges in both directions up to depth 2; each entity, observation
and relation remembers who wrote it, and deleting another caller's needs the admin scope
(`servers/memory/graph_owner.py`). `import_jsonl` reads the reference server's memory file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio

from servers.kit.errors import DomainError
from servers.kit.store import Store
from servers.memory.document_writes import Writer
from servers.memory.embedding import Embedder
from servers.memory.graph_owner import check, owner_of
from servers.memory.search import fts_query, fuse, to_blob
from servers.memory.words import index_text
from servers.memory.vectors import VectorIndex

SEMANTIC_FLOOR = 0.35


def _entity_text(name: str, entity_type: str, observations: list[str]) -> str:
    return f"{name} ({entity_type}): " + "; ".join(observations)


class KnowledgeGraph:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self.index = VectorIndex(embedder.dimensions)
        self._loaded = False

    # -- reading helpers -------------------------------------------------------------------

    @staticmethod
    def _entities(db: sqlite3.Connection, names: list[str] | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT rowid, name, entity_type FROM entities", []
        if names is not None:
            if not names:
                return []
            sql += f" WHERE name IN ({','.join('?' * len(names))})"
            args = names
        rows = db.execute(sql + " ORDER BY rowid", args).fetchall()
        observations: dict[str, list[str]] = {r["name"]: [] for r in rows}
        if rows:
            for o in db.execute(f"SELECT entity, content FROM observations WHERE entity IN ({','.join('?' * len(rows))}) ORDER BY id",
                                [r["name"] for r in rows]):
                observations[o["entity"]].append(o["content"])
        return [{"name": r["name"], "entityType": r["entity_type"], "observations": observations[r["name"]]} for r in rows]

    @staticmethod
    def _relations(db: sqlite3.Connection, touching: list[str] | None = None) -> list[dict[str, str]]:
        sql, args = "SELECT source, target, relation_type FROM relations", []
        if touching is not None:
            if not touching:
                return []
            marks = ",".join("?" * len(touching))
            sql += f" WHERE source IN ({marks}) OR target IN ({marks})"
            args = touching + touching
        return [{"from": r["source"], "to": r["target"], "relationType": r["relation_type"]} for r in db.execute(sql + " ORDER BY id", args)]

    async def _reindex(self, names: list[str]) -> None:
        """Re-embed and re-index these entities (after their observations changed). An entity changed or
        deleted by another call while this one embedded is left to that call's own re-index: writing
        this older text over it would leave its search stale (or fail on a deleted entity)."""
        entities = await self.store.run(lambda db: self._entities(db, names))
        if not entities:
            return
        texts = [_entity_text(e["name"], e["entityType"], e["observations"]) for e in entities]
        vectors = await anyio.to_thread.run_sync(self.embedder.embed, texts)

        def write(db: sqlite3.Connection) -> list[tuple[int, int]]:
            now = {e["name"]: _entity_text(e["name"], e["entityType"], e["observations"]) for e in self._entities(db, names)}
            done = []
            for at, (entity, text, vector) in enumerate(zip(entities, texts, vectors, strict=True)):
                if now.get(entity["name"]) != text:
                    continue
                row = db.execute("SELECT rowid FROM entities WHERE name = ?", (entity["name"],)).fetchone()
                db.execute("UPDATE entities SET vector = ? WHERE rowid = ?", (to_blob(vector), row["rowid"]))
                db.execute("DELETE FROM entity_fts WHERE rowid = ?", (row["rowid"],))
                db.execute("INSERT INTO entity_fts (rowid, name, entity_type, observations) VALUES (?, ?, ?, ?)",
                           (row["rowid"], index_text(entity["name"]), index_text(entity["entityType"]), index_text(text)))
                done.append((row["rowid"], at))
            return done

        done = await self.store.run(write)
        if self._loaded and done:
            self.index.add([rowid for rowid, _ in done], vectors[[at for _, at in done]])

    async def _vectors(self) -> VectorIndex:
        if not self._loaded:
            import numpy as np

            rows = await self.store.run(lambda db: db.execute("SELECT rowid, vector FROM entities WHERE vector IS NOT NULL").fetchall())
            if rows:
                self.index.add([r["rowid"] for r in rows], np.vstack([np.frombuffer(r["vector"], np.float32) for r in rows]))
            self._loaded = True
        return self.index

    # -- the reference server's operations -------------------------------------------------

    async def create_entities(self, entities: list[dict[str, Any]], writer: Writer | None = None) -> list[dict[str, Any]]:
        owner = owner_of(writer)  # who may delete what: servers/memory/graph_owner.py

        def write(db: sqlite3.Connection) -> list[dict[str, Any]]:
            created = []
            for entity in entities:
                if db.execute("SELECT 1 FROM entities WHERE name = ?", (entity["name"],)).fetchone():
                    continue
                db.execute("INSERT INTO entities (name, entity_type, owner) VALUES (?, ?, ?)",
                           (entity["name"], entity["entityType"], owner))
                kept = list(dict.fromkeys(entity.get("observations", [])))  # stored once each: answered so too
                db.executemany("INSERT OR IGNORE INTO observations (entity, content, owner) VALUES (?, ?, ?)",
                               [(entity["name"], o, owner) for o in kept])
                created.append({"name": entity["name"], "entityType": entity["entityType"], "observations": kept})
            return created

        created = await self.store.run(write)
        await self._reindex([e["name"] for e in created])
        return created

    async def create_relations(self, relations: list[dict[str, str]], writer: Writer | None = None) -> list[dict[str, str]]:
        def write(db: sqlite3.Connection) -> list[dict[str, str]]:
            created = []
            for r in relations:
                cursor = db.execute("INSERT OR IGNORE INTO relations (source, target, relation_type, owner) VALUES (?, ?, ?, ?)",
                                    (r["from"], r["to"], r["relationType"], owner_of(writer)))
                if cursor.rowcount:
                    created.append({"from": r["from"], "to": r["to"], "relationType": r["relationType"]})
            return created

        return await self.store.run(write)

    async def add_observations(self, observations: list[dict[str, Any]], writer: Writer | None = None) -> list[dict[str, Any]]:
        def write(db: sqlite3.Connection) -> list[dict[str, Any]]:
            results = []
            for item in observations:
                if db.execute("SELECT 1 FROM entities WHERE name = ?", (item["entityName"],)).fetchone() is None:
                    raise DomainError("not_found", f"Entity with name {item['entityName']} not found")
                added = [c for c in dict.fromkeys(item["contents"])
                         if db.execute("INSERT OR IGNORE INTO observations (entity, content, owner) VALUES (?, ?, ?)",
                                       (item["entityName"], c, owner_of(writer))).rowcount]
                results.append({"entityName": item["entityName"], "addedObservations": added})
            return results

        results = await self.store.run(write)
        await self._reindex([r["entityName"] for r in results if r["addedObservations"]])
        return results

    async def delete_entities(self, names: list[str], writer: Writer | None = None) -> None:
        def write(db: sqlite3.Connection) -> list[int]:
            marks = ",".join("?" * len(names))
            rows = db.execute(f"SELECT rowid, name, owner FROM entities WHERE name IN ({marks})", names).fetchall()
            for row in rows:  # all checked before anything is deleted
                check(writer, f"entity {row['name']!r}", "entityNames", (row["owner"],))
            ids = [r["rowid"] for r in rows]
            db.executemany("DELETE FROM entity_fts WHERE rowid = ?", [(i,) for i in ids])
            db.execute(f"DELETE FROM observations WHERE entity IN ({marks})", names)
            db.execute(f"DELETE FROM relations WHERE source IN ({marks}) OR target IN ({marks})", names + names)
            db.execute(f"DELETE FROM entities WHERE name IN ({marks})", names)
            return ids

        if names:
            removed = await self.store.run(write)
            (await self._vectors()).remove(removed)

    async def delete_observations(self, deletions: list[dict[str, Any]], writer: Writer | None = None) -> None:
        def write(db: sqlite3.Connection) -> list[str]:
            for item in deletions:  # all checked before anything is deleted
                for content in item["observations"]:
                    row = db.execute("SELECT o.owner, e.owner AS entity_owner FROM observations o JOIN entities e ON e.name = o.entity "
                                     "WHERE o.entity = ? AND o.content = ?", (item["entityName"], content)).fetchone()
                    if row is not None:
                        check(writer, f"an observation of {item['entityName']!r}", "deletions", (row["owner"], row["entity_owner"]))
            touched = []
            for item in deletions:
                for content in item["observations"]:
                    if db.execute("DELETE FROM observations WHERE entity = ? AND content = ?", (item["entityName"], content)).rowcount:
                        touched.append(item["entityName"])
            return touched

        await self._reindex(sorted(set(await self.store.run(write))))

    async def delete_relations(self, relations: list[dict[str, str]], writer: Writer | None = None) -> None:
        keys = [(r["from"], r["to"], r["relationType"]) for r in relations]

        def write(db: sqlite3.Connection) -> None:
            for source, target, kind in keys:  # all checked before anything is deleted
                row = db.execute("SELECT r.owner, (SELECT owner FROM entities WHERE name = r.source) AS from_owner, (SELECT owner "
                                 "FROM entities WHERE name = r.target) AS to_owner FROM relations r WHERE r.source = ? AND "
                                 "r.target = ? AND r.relation_type = ?", (source, target, kind)).fetchone()
                if row is not None:
                    check(writer, f"relation {source!r} {kind} {target!r}", "relations",
                          (row["owner"], row["from_owner"], row["to_owner"]))
            db.executemany("DELETE FROM relations WHERE source = ? AND target = ? AND relation_type = ?", keys)

        await self.store.run(write)

    async def read_graph(self) -> dict[str, Any]:
        return await self.store.run(lambda db: {"entities": self._entities(db), "relations": self._relations(db)})

    async def open_nodes(self, names: list[str]) -> dict[str, Any]:
        def read(db: sqlite3.Connection) -> dict[str, Any]:
            entities = self._entities(db, list(dict.fromkeys(names)))
            return {"entities": entities, "relations": self._relations(db, [e["name"] for e in entities])}

        return await self.store.run(read)

    async def search_nodes(self, query: str, limit: int = 50) -> dict[str, Any]:
        needle = query.lower()
        rankings: dict[str, list[int]] = {}

        def lexical(db: sqlite3.Connection) -> dict[str, list[int]]:
            found = {"substring": [r["rowid"] for r in db.execute(
                "SELECT rowid FROM entities e WHERE instr(lower(name), ?) OR instr(lower(entity_type), ?) OR EXISTS "
                "(SELECT 1 FROM observations o WHERE o.entity = e.name AND instr(lower(o.content), ?)) ORDER BY rowid",
                (needle, needle, needle))]}
            if match := fts_query(query):
                found["keyword"] = [r["rowid"] for r in db.execute(
                    "SELECT rowid FROM entity_fts WHERE entity_fts MATCH ? ORDER BY bm25(entity_fts, 3.0, 1.0, 1.0) LIMIT ?", (match, limit))]
            return found

        rankings.update(await self.store.run(lexical))
        vector = (await anyio.to_thread.run_sync(self.embedder.embed, [query]))[0]
        rankings["semantic"] = [i for i, cosine in (await self._vectors()).search(vector, limit) if cosine >= SEMANTIC_FLOOR]
        ordered = [ident for ident, _, _ in fuse(rankings)]
        keep = set(rankings["substring"]) | set(ordered[:limit])
        ordered = [i for i in ordered if i in keep]

        def read(db: sqlite3.Connection) -> dict[str, Any]:
            names = {r["rowid"]: r["name"] for r in db.execute(
                f"SELECT rowid, name FROM entities WHERE rowid IN ({','.join('?' * len(ordered))})", ordered)} if ordered else {}
            by_name = {e["name"]: e for e in self._entities(db, list(names.values()))}
            entities = [by_name[names[i]] for i in ordered if i in names]
            return {"entities": entities, "relations": self._relations(db, [e["name"] for e in entities])}

        return await self.store.run(read)

    # -- ours ------------------------------------------------------------------------------

    async def neighbors(self, name: str, depth: int, relation_types: list[str] | None) -> dict[str, Any]:
        """Entities within `depth` hops of `name` (edges followed either way) and the edges walked."""
        def read(db: sqlite3.Connection) -> dict[str, Any]:
            if db.execute("SELECT 1 FROM entities WHERE name = ?", (name,)).fetchone() is None:
                raise DomainError("not_found", f"Entity with name {name} not found")
            seen, frontier, edges = {name}, [name], []
            for _ in range(depth):
                step = [r for r in self._relations(db, frontier) if not relation_types or r["relationType"] in relation_types]
                frontier = []
                for relation in step:
                    if relation not in edges:
                        edges.append(relation)
                    for end in (relation["from"], relation["to"]):
                        if end not in seen:
                            seen.add(end)
                            frontier.append(end)
                if not frontier:
                    break
            return {"entities": self._entities(db, sorted(seen)), "relations": edges}

        return await self.store.run(read)

    async def import_jsonl(self, path: Path) -> dict[str, int]:
        """Load a reference server-memory file (one JSON object per line, `type` entity or relation)."""
        entities, relations = [], []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                raise DomainError("invalid_argument", f"{path.name} line {number} is not JSON") from None
            if item.get("type") == "entity":
                entities.append({"name": item["name"], "entityType": item.get("entityType", ""), "observations": item.get("observations", [])})
            elif item.get("type") == "relation":
                relations.append({"from": item["from"], "to": item["to"], "relationType": item["relationType"]})
        created = await self.create_entities(entities)
        existing = {e["name"] for e in created}
        merged = await self.add_observations([{"entityName": e["name"], "contents": e["observations"]}
                                              for e in entities if e["name"] not in existing and e["observations"]])
        return {"entities": len(created), "observations_added": sum(len(m["addedObservations"]) for m in merged),
                "relations": len(await self.create_relations(relations))}
