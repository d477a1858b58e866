"""The memory tool surface: memories per scope, document search, and the knowledge graph with the
reference server-memory's tool names, argument shapes and results."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field

from hub.datadir import default_data_dir
from servers.kit.errors import DomainError
from servers.kit.tools import configure_domain, domain_tool
from servers.memory.model import (
    DocumentDeleted,
    DocumentList,
    Forgotten,
    Ingested,
    Kind,
    Memory,
    MemoryList,
    Mode,
    Recall,
    Remembered,
    Scope,
    SearchResults,
)
from servers.memory.owner import own_scope
from servers.memory.readers import allowed_roots, check_allowed, read_document
from servers.memory.service import MemoryService

Limit = Annotated[int, Field(ge=1, le=100)]
Tags = Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=50)]
ScopeArg = Annotated[Scope, Field(description="Whose memory: any of user (default: you; naming another user needs the admin scope), "
                                               "agent, project. Searches never leave this exact scope.")]


class Entity(BaseModel):
    name: str = Field(description="The name of the entity")
    entityType: str = Field(description="The type of the entity")
    observations: list[str] = Field(description="An array of observation contents associated with the entity")


class Relation(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="The name of the entity where the relation starts")
    to: str = Field(description="The name of the entity where the relation ends")
    relationType: str = Field(description="The type of the relation")


class ObservationAddition(BaseModel):
    entityName: str = Field(description="The name of the entity to add the observations to")
    contents: list[str] = Field(description="An array of observation contents to add")


class ObservationDeletion(BaseModel):
    entityName: str = Field(description="The name of the entity containing the observations")
    observations: list[str] = Field(description="An array of observations to delete")


class Entities(BaseModel):
    entities: list[Entity]


class Relations(BaseModel):
    relations: list[Relation]


class AddedObservations(BaseModel):
    entityName: str
    addedObservations: list[str]


class ObservationResults(BaseModel):
    results: list[AddedObservations]


class Done(BaseModel):
    success: bool = True
    message: str


class Graph(BaseModel):
    entities: list[Entity]
    relations: list[Relation]


def _relations(items: list[Relation]) -> list[dict[str, str]]:
    return [{"from": r.from_, "to": r.to, "relationType": r.relationType} for r in items]


def make_backend(name: str | None = None, data_dir: Path | None = None) -> MemoryService:
    if name not in (None, "embedded", "sqlite"):
        raise ValueError(f"unknown memory backend {name!r}; the memory domain keeps its data in SQLite (embedded)")
    return MemoryService(data_dir or default_data_dir())


def create_server(backend: MemoryService | None = None) -> MCPServer:
    service = backend or make_backend()
    mcp = MCPServer("memory", instructions="Long-term memory per scope, document search and a knowledge graph. Recall before you "
                    "ask the user again; remember what they tell you to.")
    configure_domain(mcp, open_world=False, idempotency=None)

    # -- memories ---------------------------------------------------------------------------

    @domain_tool(mcp, open_world=False)
    async def remember(
        content: Annotated[str, Field(min_length=1, max_length=20000)],
        scope: ScopeArg,
        kind: Annotated[Kind | None, Field(description="fact when new; left out, an existing memory keeps its kind.")] = None,
        tags: Tags | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        as_new: Annotated[bool, Field(description="Store as its own memory even if it looks like a newer statement of a stored "
                                                  "fact (e.g. a second allergy); the same text is still stored once.")] = False,
    ) -> Remembered:
        """Save what the user asks you to remember for later.
        Store a fact, preference or note for a scope. A newer statement of a fact stored there (same text, or the same
        statement with a new value, e.g. Monday -> Tuesday) updates that memory: the new text wins and the old one goes to
        its history. The answer says what was stored: action created/updated/unchanged, stored_text, replaced_text."""
        return await service.memories.remember(content, kind, own_scope(scope), tags or [], source, metadata or {}, as_new)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def recall(query: Annotated[str, Field(min_length=1, max_length=2000)], scope: ScopeArg, kinds: list[Kind] | None = None,
                     tags: Tags | None = None, mode: Mode = "hybrid", limit: Limit = 10, include_history: bool = False) -> Recall:
        """Look up what you were told before (saved facts, preferences, notes); for ingested documents use
        search_documents, for the knowledge graph search_nodes.
        Search one scope's memories (hybrid keyword + semantic ranking by default); include_history adds earlier versions."""
        return await service.memories.recall(query, own_scope(scope), kinds, tags, mode, limit, include_history)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def get_memories(ids: Annotated[list[str], Field(min_length=1, max_length=100)], scope: ScopeArg,
                           include_history: bool = False) -> MemoryList:
        """Read saved memories whose ids you know.
        Memories by id (only those in this scope); include_history adds their earlier versions, oldest first."""
        return await service.memories.get(ids, own_scope(scope), include_history)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def list_recent(scope: ScopeArg, limit: Limit = 20, cursor: str | None = None) -> MemoryList:
        """The most recently saved or changed memories.
        A scope's memories, most recently changed first."""
        return await service.memories.recent(own_scope(scope), limit, cursor)

    @domain_tool(mcp, idempotent=True, open_world=False)
    async def update_memory(
        id: str, scope: ScopeArg,
        version: Annotated[str | None, Field(description="The version you read; a newer change makes this a conflict.")] = None,
        content: Annotated[str | None, Field(min_length=1, max_length=20000)] = None, kind: Kind | None = None,
        tags: Annotated[Tags | None, Field(description="The full new list of tags (replaces the old list).")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Merged into the memory's metadata (JSON merge patch: "
                                                                     "null removes a key, other keys are kept).")] = None,
    ) -> Memory:
        """Correct or edit a saved memory.
        Change only the fields you pass of a memory (content, kind, tags, metadata); the old version goes to its history."""
        return await service.memories.update(id, own_scope(scope), version, content, kind, tags, metadata)

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def forget(scope: ScopeArg, ids: list[str] | None = None, kinds: list[Kind] | None = None, tags: Tags | None = None,
                     before: _dt.datetime | None = None, confirm: bool = False) -> Forgotten:
        """Erase saved memories.
        Delete memories of a scope by ids or by filter (kinds, tags, last changed before). Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", "forgetting deletes memories for good: call again with confirm=true")
        return await service.memories.forget(own_scope(scope), ids, kinds, tags, before)

    # -- documents --------------------------------------------------------------------------

    @domain_tool(mcp, idempotent=True, open_world=False)
    async def ingest_document(
        ctx: Context,
        title: Annotated[str | None, Field(max_length=500)] = None,
        text: Annotated[str | None, Field(max_length=5_000_000)] = None,
        path: Annotated[str | None, Field(description="A markdown, text, HTML or PDF file inside MEMORY_ALLOWED_PATHS.")] = None,
        source_uri: Annotated[str | None, Field(description="Where it came from; also its identity for re-ingest.")] = None,
        tags: Tags | None = None,
        date: _dt.date | None = None,
        chunk_size: Annotated[int, Field(ge=200, le=8000)] = 900,
        chunk_overlap: Annotated[int, Field(ge=0, le=2000)] = 150,
    ) -> Ingested:
        """Add a document (handbook, policy, PDF, notes) to the searchable knowledge base.
        Add a document (text, or a file path) for search. Unchanged content is a no-op; changed content replaces it atomically."""
        if (text is None) == (path is None):
            raise DomainError("invalid_argument", "give exactly one of text or path")
        if path is not None:
            resolved = check_allowed(Path(path), allowed_roots())
            found_title, text = read_document(resolved)
            title = title or found_title
            source_uri = source_uri or resolved.as_uri()
        if not title:
            raise DomainError("invalid_argument", "a document given as text needs a title", details={"field": "title"})

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        assert text is not None
        return await service.documents.ingest(title, text, source_uri, tags or [], date, chunk_size, chunk_overlap, progress)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def search_documents(query: Annotated[str, Field(min_length=1, max_length=2000)], mode: Mode = "hybrid", tags: Tags | None = None,
                               since: _dt.date | None = None, until: _dt.date | None = None, limit: Limit = 10) -> SearchResults:
        """Search the text of ingested documents for passages about a question; for saved memories use recall.
        Search document chunks: hybrid (default), keyword (BM25) or semantic; each hit says its rank in each method."""
        return await service.documents.search(query, mode, tags, since, until, limit)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def list_documents(tags: Tags | None = None, limit: Limit = 50, cursor: str | None = None) -> DocumentList:
        """Which documents are in the knowledge base.
        Ingested documents, newest first."""
        return await service.documents.list(tags, limit, cursor)

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_document(document_id: str, confirm: bool = False) -> DocumentDeleted:
        """Delete a document from the knowledge base.
        Remove a document and its chunks from search. Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", "deleting removes the document from search: call again with confirm=true")
        return await service.documents.delete(document_id)

    # -- knowledge graph (the reference server's tools) -----------------------------------------

    @domain_tool(mcp, open_world=False)
    async def create_entities(entities: list[Entity]) -> Entities:
        """Create multiple new entities in the knowledge graph"""
        created = await service.graph.create_entities([e.model_dump() for e in entities])
        return Entities(entities=[Entity(**e) for e in created])

    @domain_tool(mcp, open_world=False)
    async def create_relations(relations: list[Relation]) -> Relations:
        """Create multiple new relations between entities in the knowledge graph. Relations should be in active voice"""
        created = await service.graph.create_relations(_relations(relations))
        return Relations(relations=[Relation.model_validate(r) for r in created])

    @domain_tool(mcp, open_world=False)
    async def add_observations(observations: list[ObservationAddition]) -> ObservationResults:
        """Add new observations to existing entities in the knowledge graph"""
        results = await service.graph.add_observations([o.model_dump() for o in observations])
        return ObservationResults(results=[AddedObservations(**r) for r in results])

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_entities(entityNames: list[str]) -> Done:
        """Delete multiple entities and their associated relations from the knowledge graph"""
        await service.graph.delete_entities(entityNames)
        return Done(message="Entities deleted successfully")

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_observations(deletions: list[ObservationDeletion]) -> Done:
        """Delete specific observations from entities in the knowledge graph"""
        await service.graph.delete_observations([d.model_dump() for d in deletions])
        return Done(message="Observations deleted successfully")

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_relations(relations: list[Relation]) -> Done:
        """Delete multiple relations from the knowledge graph"""
        await service.graph.delete_relations(_relations(relations))
        return Done(message="Relations deleted successfully")

    @domain_tool(mcp, read_only=True, open_world=False)
    async def read_graph() -> Graph:
        """Read the entire knowledge graph"""
        return Graph.model_validate(await service.graph.read_graph())

    @domain_tool(mcp, read_only=True, open_world=False)
    async def search_nodes(query: str) -> Graph:
        """Search for nodes in the knowledge graph based on a query (ranked: names, types and observations, by words and meaning)"""
        return Graph.model_validate(await service.graph.search_nodes(query))

    @domain_tool(mcp, read_only=True, open_world=False)
    async def open_nodes(names: list[str]) -> Graph:
        """Open specific nodes in the knowledge graph by their names"""
        return Graph.model_validate(await service.graph.open_nodes(names))

    @domain_tool(mcp, read_only=True, open_world=False)
    async def graph_neighbors(entity: str, depth: Annotated[int, Field(ge=1, le=2)] = 1,
                              relation_types: list[str] | None = None) -> Graph:
        """Entities within depth hops of an entity (edges followed in either direction) and those edges."""
        return Graph.model_validate(await service.graph.neighbors(entity, depth, relation_types))

    mcp.backend = service  # type: ignore[attr-defined]
    return mcp

