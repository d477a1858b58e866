"""The memory domain's backend: one SQLite file (`memory.sqlite` in the data dir) holding memories,
documents and the knowledge graph, and one embedder shared by all three, loaded on first use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from servers.kit.store import Store
from servers.memory import graph_owner, history, keyword_index, sequences
from servers.memory.documents import DocumentStore
from servers.memory.embedding import Embedder, load_embedder
from servers.memory.graph import KnowledgeGraph
from servers.memory.jobs import IngestJobs
from servers.memory.memories import MemoryBank

_MIGRATIONS = [
    """CREATE TABLE memories (rowid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, scope_key TEXT NOT NULL,
        user TEXT, agent TEXT, project TEXT, content TEXT NOT NULL, normal TEXT NOT NULL, kind TEXT NOT NULL, tags TEXT NOT NULL,
        source TEXT, metadata TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL,
        vector BLOB NOT NULL);
    CREATE INDEX memories_scope ON memories(scope_key, updated_at);
    CREATE INDEX memories_normal ON memories(scope_key, normal);
    CREATE VIRTUAL TABLE memory_fts USING fts5(content, tags, tokenize='porter unicode61');
    CREATE TABLE documents (id TEXT PRIMARY KEY, identity TEXT NOT NULL UNIQUE, title TEXT NOT NULL, source TEXT, tags TEXT NOT NULL,
        content_hash TEXT NOT NULL, characters INTEGER NOT NULL, chunk_count INTEGER NOT NULL, doc_date TEXT, ingested_at TEXT NOT NULL);
    CREATE TABLE doc_tags (document_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (document_id, tag));
    CREATE INDEX doc_tags_tag ON doc_tags(tag);
    CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, document_id TEXT NOT NULL, position INTEGER NOT NULL,
        heading TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL);
    CREATE INDEX chunks_document ON chunks(document_id);
    CREATE VIRTUAL TABLE chunk_fts USING fts5(title, heading, text, tokenize='porter unicode61');
    CREATE TABLE entities (rowid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, entity_type TEXT NOT NULL, vector BLOB);
    CREATE TABLE observations (id INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL, content TEXT NOT NULL,
        UNIQUE (entity, content));
    CREATE TABLE relations (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, target TEXT NOT NULL,
        relation_type TEXT NOT NULL, UNIQUE (source, target, relation_type));
    CREATE VIRTUAL TABLE entity_fts USING fts5(name, entity_type, observations, tokenize='porter unicode61')""",
    history.MIGRATION,
    # Who ingested each document (its qualified principal; NULL: the local operator, or before this
    # column): replacing another caller's document needs the admin scope (`documents.Writer`).
    "ALTER TABLE documents ADD COLUMN owner TEXT",
    # When each document was first ingested: list_documents pages on (created_at, id), which a re-ingest
    # leaves alone (ingested_at moves), so a walk sees each document once while others write.
    """ALTER TABLE documents ADD COLUMN created_at TEXT; UPDATE documents SET created_at = ingested_at;
    CREATE INDEX documents_created ON documents(created_at, id)""",
    # Paging positions that only grow: list_documents and list_recent page on them (servers/memory/sequences.py).
    sequences.MIGRATION,
    # Who wrote each graph entity, observation and relation (NULL: the local operator, or from before
    # this column): changing or deleting another caller's needs the admin scope (servers/memory/graph_owner.py).
    graph_owner.MIGRATION,
    # Keyword search splits words itself, CJK and Thai as character pairs (servers/memory/words.py; outside
    # review memory26 D3): the FTS tables are made again, and `keyword_index.refill` fills them at start.
    keyword_index.MIGRATION,
]


def _bind_embedder(path: Path, name: str) -> None:
    """Vectors from two embedders cannot be compared: the first one used owns this database."""
    with sqlite3.connect(path, timeout=5) as db:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        # Claimed in one statement: two servers opening one database at once both saw no row, and one
        # died on the primary key (second outside review).
        db.execute("INSERT OR IGNORE INTO meta VALUES ('embedder', ?)", (name,))
        row = db.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        if row[0] != name:
            raise ValueError(f"{path} was indexed with the {row[0]} embedder, not {name}: set MEMORY_EMBEDDER to match, "
                             "or use a new data dir and ingest again")


class MemoryService:
    name = "embedded"

    def __init__(self, data_dir: Path, embedder: Embedder | None = None) -> None:
        self.store = Store(data_dir / "memory.sqlite", _MIGRATIONS)
        embedder = embedder or load_embedder(data_dir / "models")
        self.embedder = embedder
        _bind_embedder(self.store.path, embedder.name)
        keyword_index.refill(self.store.path)
        self.memories = MemoryBank(self.store, embedder)
        self.documents = DocumentStore(self.store, embedder)
        self.ingest_jobs = IngestJobs(self.documents)
        self.graph = KnowledgeGraph(self.store, embedder)

    async def seed_demo(self) -> None:
        """A few documents, memories and graph nodes to try the tools on."""
        from servers.memory.demo import seed

        await seed(self)
