"""The memory tool surface: memories per scope, document search, and the knowledge graph with the
reference server-memory's tool names, argument shapes and results."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from servers.kit.errors import DomainError
from servers.kit.providers import Provider, Providers
from servers.kit.tools import configure_domain, domain_examples, domain_tool
from servers.memory.model import (
    MAX_DOCUMENT_CHARS,
    MAX_METADATA_CHARS,
    DocumentDeleted, DocumentText, DocumentTitle,
    EntityName,
    Identifier,
    MemoryText,
    QueryText,
    ShortText,
    TagName,
    TypeName,
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
    nfc,
)
from servers.memory.document_writes import check_caller_source
from servers.memory.graph_models import (
    AddedObservations,
    Done,
    Entities,
    Entity,
    EntityNames,
    Graph,
    ObservationAddition,
    ObservationDeletion,
    ObservationResults,
    Relation,
    Relations,
    relation_rows,
)
from servers.memory.owner import document_writer, own_scope
from servers.memory.readers import allowed_roots, check_allowed, read_document
from servers.memory.chunking import CHUNK_OVERLAP, CHUNK_SIZE
from servers.memory.jobs import MAX_WAIT_S, IngestJob, folder_files
from servers.memory.service import MemoryService

Limit = Annotated[int, Field(ge=1, le=100, description="How many items at most.")]
PageCursor = Annotated[str | None, Field(max_length=2000, description="next_cursor of the previous page; omit for the first page.")]
TagFilter = Annotated[list[TagName] | None, Field(max_length=50, description="Only items carrying these tags.")]
Kinds = Annotated[list[Kind] | None, Field(description="Only these kinds (fact, preference, note); default all.")]
History = Annotated[bool, Field(description="Also return the older versions each memory replaced.")]
Tags = Annotated[list[TagName], Field(max_length=50)]
Ids = Annotated[list[Identifier], Field(min_length=1, max_length=100)]
Metadata = Annotated[dict[str, Any], Field(description=f"JSON object, at most {MAX_METADATA_CHARS} characters as JSON.")]
ScopeArg = Annotated[Scope, Field(description="Whose memory: any of user (default: you; naming another user needs the admin scope), "
                                               "agent, project. Searches never leave this exact scope.")]


def _bounded(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """`metadata`, once its JSON size is within `MAX_METADATA_CHARS` (else `invalid_argument`)."""
    size = len(json.dumps(metadata or {}, default=str))
    if size > MAX_METADATA_CHARS:
        raise DomainError("invalid_argument", f"metadata is {size} characters as JSON, more than {MAX_METADATA_CHARS}: keep "
                          "large content in the memory text or a document", details={"field": "metadata"})
    return metadata or {}


PROVIDERS = Providers("memory", {  # the memory domain keeps its data in SQLite under the data dir
    "embedded": Provider("servers.memory.service:MemoryService"),
    "sqlite": Provider("servers.memory.service:MemoryService"),
})


def make_backend(name: str | None = None, data_dir: Path | None = None) -> MemoryService:
    """The embedded memory service (`PROVIDERS`; `$MEMORY_BACKEND` may say `sqlite`, the same one)."""
    return PROVIDERS.make(name, data_dir)


def create_server(backend: MemoryService | None = None) -> MCPServer:
    service = backend or make_backend()
    mcp = MCPServer("memory", instructions="Long-term memory per scope, document search and a knowledge graph. Recall before you "
                    "ask the user again; remember what they tell you to.")
    configure_domain(mcp, open_world=False, idempotency=None, examples=domain_examples(__package__))

    # -- memories ---------------------------------------------------------------------------

    @domain_tool(mcp, open_world=False)
    async def remember(
        content: Annotated[MemoryText, Field(description="The fact or preference to keep, as one self-contained sentence.")],
        scope: ScopeArg,
        kind: Annotated[Kind | None, Field(description="fact when new; left out, an existing memory keeps its kind.")] = None,
        tags: Annotated[Tags | None, Field(description="Tags to file it under, e.g. ['travel'].")] = None,
        source: Annotated[ShortText | None, Field(description="Where it was learned, e.g. a chat or document.")] = None,
        metadata: Annotated[Metadata | None, Field(description="Extra JSON fields kept with the memory.")] = None,
        as_new: Annotated[bool, Field(description="Store as its own memory even if it looks like a newer statement of a stored "
                                                  "fact (e.g. a second allergy); the same text is still stored once.")] = False,
    ) -> Remembered:
        """Save what the user asks you to remember for later.
        Store a fact, preference or note for a scope. A newer statement of a fact stored there (same text, or the same
        statement with a new value, e.g. Monday -> Tuesday) updates that memory: the new text wins and the old one goes to
        its history. The answer says what was stored: action created/updated/unchanged, stored_text, replaced_text."""
        return await service.memories.remember(content, kind, own_scope(scope), tags or [], source, _bounded(metadata), as_new)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def recall(
        query: Annotated[QueryText, Field(description="What you want to know, in words.")], scope: ScopeArg,
        kinds: Kinds = None, tags: TagFilter = None,
        mode: Annotated[Mode, Field(description="hybrid (default), keyword or semantic matching.")] = "hybrid",
        limit: Limit = 10, include_history: History = False,
    ) -> Recall:
        """Look up what you were told before (saved facts, preferences, notes); for ingested documents use
        search_documents, for the knowledge graph search_nodes.
        Search one scope's memories (hybrid keyword + semantic ranking by default); include_history adds earlier versions."""
        return await service.memories.recall(query, own_scope(scope), kinds, tags, mode, limit, include_history)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def get_memories(ids: Annotated[Ids, Field(description="Memory ids (from recall or list_recent).")], scope: ScopeArg,
                           include_history: History = False) -> MemoryList:
        """Read saved memories whose ids you know.
        Memories by id (only those in this scope); include_history adds their earlier versions, oldest first."""
        return await service.memories.get(ids, own_scope(scope), include_history)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def list_recent(scope: ScopeArg, limit: Limit = 20, cursor: PageCursor = None) -> MemoryList:
        """The most recently saved memories.
        A scope's memories, newest first by when each was first saved (an update does not move one, so paging with
        next_cursor sees each memory once); the cursor only works for the same scope."""
        return await service.memories.recent(own_scope(scope), limit, cursor)

    @domain_tool(mcp, idempotent=True, open_world=False)
    async def update_memory(
        id: Annotated[Identifier, Field(description="Memory id (from recall or list_recent).")], scope: ScopeArg,
        version: Annotated[str | None, Field(max_length=20, description="The version you read; a newer change makes this a "
                                                                     "conflict.")] = None,
        content: Annotated[MemoryText | None, Field(description="The corrected text.")] = None,
        kind: Annotated[Kind | None, Field(description="A new kind.")] = None,
        tags: Annotated[Tags | None, Field(description="The full new list of tags (replaces the old list).")] = None,
        metadata: Annotated[Metadata | None, Field(description="Merged into the memory's metadata (JSON merge patch: "
                                                                     "null removes a key, other keys are kept).")] = None,
    ) -> Memory:
        """Correct or edit a saved memory.
        Change only the fields you pass of a memory (content, kind, tags, metadata); the old version goes to its history."""
        return await service.memories.update(id, own_scope(scope), version, content, kind, tags,
                                             None if metadata is None else _bounded(metadata))

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def forget(
        scope: ScopeArg,
        ids: Annotated[Ids | None, Field(description="These memories (from recall or list_recent).")] = None,
        kinds: Kinds = None, tags: TagFilter = None,
        before: Annotated[_dt.datetime | None, Field(description="Only memories last changed before this time (ISO 8601, to the "
                                                                 "microsecond; without an offset it is UTC).")] = None,
        confirm: Annotated[bool, Field(description="Must be true: deletion cannot be undone.")] = False,
    ) -> Forgotten:
        """Erase saved memories.
        Delete memories of a scope by ids or by filter (kinds, tags, last changed before). Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", "forgetting deletes memories for good: call again with confirm=true")
        return await service.memories.forget(own_scope(scope), ids, kinds, tags, before)

    # -- documents --------------------------------------------------------------------------

    @domain_tool(mcp, idempotent=True, open_world=False)
    async def ingest_document(
        ctx: Context,
        title: Annotated[DocumentTitle | None, Field(description="Document title; default from the file or text.")] = None,
        text: Annotated[DocumentText | None, Field(description=f"The document's text, at most {MAX_DOCUMENT_CHARS} characters "
                                                               "(what one request carries); a bigger one: give path.")] = None,
        path: Annotated[str | None, Field(max_length=4096, description="A markdown, text, HTML or PDF file inside MEMORY_ALLOWED_PATHS; "
                                                                       "its source is the file's own file:// URI.")] = None,
        source_uri: Annotated[str | None, Field(max_length=2000, description="Where the text came from (e.g. https://...), also its "
                                                                             "identity for re-ingest; not file: (give path).")] = None,
        tags: Annotated[Tags | None, Field(description="Tags to file it under; on a re-ingest, omit to keep its tags, [] to clear them.")] = None,
        date: Annotated[_dt.date | None, Field(description="The document's own date (for since/until searches); omit to keep it.")] = None,
        chunk_size: Annotated[int, Field(ge=200, le=8000, description="Characters per searchable passage.")] = CHUNK_SIZE,
        chunk_overlap: Annotated[int, Field(ge=0, le=2000, description="Characters shared by neighbouring passages.")] = CHUNK_OVERLAP,
    ) -> Ingested:
        """Add a document (handbook, policy, PDF, notes) to the searchable knowledge base.
        Add a document (text, or a file path) for search. Unchanged content is a no-op; changed content replaces it atomically."""
        if (text is None) == (path is None):
            raise DomainError("invalid_argument", "give exactly one of text or path")
        from_file = False
        if path is not None:
            resolved = check_allowed(Path(path), allowed_roots())
            found_title, text = read_document(resolved)
            # The file's own text under its own URI and title: any writer may refresh it (docs/memory.md, "Sources").
            from_file = source_uri in (None, resolved.as_uri()) and title in (None, nfc(found_title))
            if source_uri != resolved.as_uri():
                check_caller_source(source_uri)
            title = title or found_title
            source_uri = source_uri or resolved.as_uri()
        else:
            check_caller_source(source_uri)
        if not title:
            raise DomainError("invalid_argument", "a document given as text needs a title", details={"field": "title"})

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        assert text is not None
        return await service.documents.ingest(title, text, source_uri, tags, date, chunk_size, chunk_overlap, progress, document_writer(),
                                              from_file=from_file)

    @domain_tool(mcp, idempotent=True, open_world=False)
    async def ingest_folder(
        path: Annotated[str, Field(max_length=4096, description="A folder inside MEMORY_ALLOWED_PATHS; its markdown, text, HTML "
                                                                "and PDF files are indexed.")],
        tags: Annotated[Tags | None, Field(description="Tags to file every document under; omit to keep each known document's tags.")] = None,
        chunk_size: Annotated[int, Field(ge=200, le=8000, description="Characters per searchable passage.")] = CHUNK_SIZE,
        chunk_overlap: Annotated[int, Field(ge=0, le=2000, description="Characters shared by neighbouring passages.")] = CHUNK_OVERLAP,
    ) -> IngestJob:
        """Index every document in a folder in the background; returns a job id at once.
        Poll ingest_status for progress; search already finds the files indexed so far."""
        root = check_allowed(Path(path), allowed_roots())
        if not root.is_dir():
            raise DomainError("invalid_argument", f"{path} is not a folder: use ingest_document for one file", details={"field": "path"})
        files = await anyio.to_thread.run_sync(folder_files, root)
        return service.ingest_jobs.start(root, files, tags, chunk_size, chunk_overlap, document_writer())

    @domain_tool(mcp, read_only=True, open_world=False)
    async def ingest_status(
        ctx: Context,
        job_id: Annotated[Identifier, Field(description="The job id ingest_folder returned.")],
        wait_s: Annotated[float, Field(ge=0, le=300, description=f"Wait up to this long (at most {MAX_WAIT_S:g} s) for the job to "
                                                                 "finish, with progress notifications; 0 answers at once. The "
                                                                 "answer is the job's state then (running if not done yet).")] = 0,
    ) -> IngestJob:
        """How far a folder ingest has got (files and chunks done, errors); can wait for it to finish."""
        viewer = document_writer()  # a job is its starter's (or an admin's) to see
        if not wait_s:
            return service.ingest_jobs.get(job_id, viewer)

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, message)

        return await service.ingest_jobs.wait(job_id, wait_s, progress, viewer)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def search_documents(
        query: Annotated[QueryText, Field(description="What to find in the documents' text, in words.")],
        mode: Annotated[Mode, Field(description="hybrid (default), keyword or semantic matching.")] = "hybrid",
        tags: TagFilter = None,
        since: Annotated[_dt.date | None, Field(description="Only documents dated on or after this day.")] = None,
        until: Annotated[_dt.date | None, Field(description="Only documents dated on or before this day.")] = None,
        limit: Limit = 10,
    ) -> SearchResults:
        """Search the text of ingested documents for passages about a question; for saved memories use recall.
        Search document chunks: hybrid (default), keyword (BM25) or semantic; each hit says its rank in each method.
        In hybrid, other sections' passages may come before a section's weaker repeats (the score shown is after that)."""
        return await service.documents.search(query, mode, tags, since, until, limit)

    @domain_tool(mcp, read_only=True, open_world=False)
    async def list_documents(tags: TagFilter = None, limit: Limit = 50, cursor: PageCursor = None) -> DocumentList:
        """Which documents are in the knowledge base.
        Ingested documents, newest first by first ingest (a re-ingest does not move one); the cursor only works for the same tags."""
        return await service.documents.list(tags, limit, cursor)

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_document(
        document_id: Annotated[Identifier, Field(description="Document id (list_documents or ingest_document).")],
        confirm: Annotated[bool, Field(description="Must be true: deletion cannot be undone.")] = False,
    ) -> DocumentDeleted:
        """Delete a document from the knowledge base.
        Remove a document and its chunks from search. Requires confirm=true; another caller's document needs the admin scope."""
        if not confirm:
            raise DomainError("invalid_argument", "deleting removes the document from search: call again with confirm=true")
        return await service.documents.delete(document_id, document_writer())

    # -- knowledge graph (the reference server's tools) -----------------------------------------

    @domain_tool(mcp, open_world=False)
    async def create_entities(entities: Annotated[list[Entity], Field(
            max_length=1000, description="Nodes to add: name, entityType and observations (facts about it).")]) -> Entities:
        """Create multiple new entities in the knowledge graph"""
        created = await service.graph.create_entities([e.model_dump() for e in entities], document_writer())
        return Entities(entities=[Entity(**e) for e in created])

    @domain_tool(mcp, open_world=False)
    async def create_relations(relations: Annotated[list[Relation], Field(
            max_length=1000, description="Edges to add: from, to (entity names) and relationType.")]) -> Relations:
        """Create multiple new relations between entities in the knowledge graph. Relations should be in active voice"""
        created = await service.graph.create_relations(relation_rows(relations), document_writer())
        return Relations(relations=[Relation.model_validate(r) for r in created])

    @domain_tool(mcp, open_world=False)
    async def add_observations(observations: Annotated[list[ObservationAddition], Field(
            max_length=1000, description="Per entity name, the facts to add to it.")]) -> ObservationResults:
        """Add new observations to existing entities in the knowledge graph"""
        results = await service.graph.add_observations([o.model_dump() for o in observations], document_writer())
        return ObservationResults(results=[AddedObservations(**r) for r in results])

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_entities(
            entityNames: Annotated[EntityNames, Field(description="Entities to delete, with their relations.")]) -> Done:
        """Delete multiple entities and their associated relations from the knowledge graph (yours; another caller's needs the admin scope)"""
        await service.graph.delete_entities(entityNames, document_writer())
        return Done(message="Entities deleted successfully")

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_observations(deletions: Annotated[list[ObservationDeletion], Field(
            max_length=1000, description="Per entity name, the facts to remove from it.")]) -> Done:
        """Delete specific observations from entities in the knowledge graph (ones you added, or on your entities; else the admin scope)"""
        await service.graph.delete_observations([d.model_dump() for d in deletions], document_writer())
        return Done(message="Observations deleted successfully")

    @domain_tool(mcp, destructive=True, idempotent=True, open_world=False)
    async def delete_relations(relations: Annotated[list[Relation], Field(
            max_length=1000, description="Edges to remove: from, to and relationType.")]) -> Done:
        """Delete multiple relations from the knowledge graph (yours, or touching your entities; else the admin scope)"""
        await service.graph.delete_relations(relation_rows(relations), document_writer())
        return Done(message="Relations deleted successfully")

    @domain_tool(mcp, read_only=True, open_world=False)
    async def read_graph() -> Graph:
        """Read the entire knowledge graph"""
        return Graph.model_validate(await service.graph.read_graph())

    @domain_tool(mcp, read_only=True, open_world=False)
    async def search_nodes(
            query: Annotated[QueryText, Field(description="Words to match in entity names, types and observations.")]) -> Graph:
        """Search for nodes in the knowledge graph based on a query (ranked: names, types and observations, by words and meaning)"""
        return Graph.model_validate(await service.graph.search_nodes(query))

    @domain_tool(mcp, read_only=True, open_world=False)
    async def open_nodes(names: Annotated[EntityNames, Field(description="Entity names to read.")]) -> Graph:
        """Open specific nodes in the knowledge graph by their names"""
        return Graph.model_validate(await service.graph.open_nodes(names))

    @domain_tool(mcp, read_only=True, open_world=False)
    async def graph_neighbors(
        entity: Annotated[EntityName, Field(description="The entity to start from.")],
        depth: Annotated[int, Field(ge=1, le=2, description="Hops to follow (1 or 2).")] = 1,
        relation_types: Annotated[list[TypeName] | None, Field(max_length=50, description="Only edges of these types.")] = None,
    ) -> Graph:
        """Entities within depth hops of an entity (edges followed in either direction) and those edges."""
        return Graph.model_validate(await service.graph.neighbors(entity, depth, relation_types))

    mcp.backend = service  # type: ignore[attr-defined]
    return mcp

