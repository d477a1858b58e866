"""Records of the memory domain."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Kind = Literal["fact", "preference", "note"]
Mode = Literal["hybrid", "keyword", "semantic"]


class Scope(BaseModel):
    """Who a memory belongs to. Scopes are isolated: a search in one never sees another's memories."""

    user: str | None = Field(default=None, max_length=200)
    agent: str | None = Field(default=None, max_length=200)
    project: str | None = Field(default=None, max_length=200)

    def key(self) -> str:
        return "\x1f".join(part or "" for part in (self.user, self.agent, self.project))


class Memory(BaseModel):
    id: str
    content: str
    kind: Kind
    scope: Scope
    tags: list[str] = Field(default_factory=list)
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: _dt.datetime
    updated_at: _dt.datetime
    version: str = Field(description="Pass back to update_memory to refuse overwriting a newer change.")


class Remembered(BaseModel):
    memory: Memory
    merged: bool = Field(description="True when a near-duplicate in the same scope was found and updated instead.")
    similarity: float | None = None


class MemoryHit(BaseModel):
    memory: Memory
    score: float
    ranks: dict[str, int] = Field(description="Rank in each method that found it (keyword, semantic).")


class Recall(BaseModel):
    hits: list[MemoryHit]


class MemoryList(BaseModel):
    memories: list[Memory]
    next_cursor: str | None = None


class Forgotten(BaseModel):
    deleted: int
    ids: list[str]


class Document(BaseModel):
    id: str
    title: str
    source: str | None = None
    tags: list[str] = Field(default_factory=list)
    content_hash: str
    chunks: int
    characters: int
    date: _dt.date | None = None
    ingested_at: _dt.datetime


class Ingested(BaseModel):
    document: Document
    status: Literal["created", "replaced", "retagged", "unchanged"]


class DocumentList(BaseModel):
    documents: list[Document]
    next_cursor: str | None = None


class ChunkHit(BaseModel):
    chunk_id: int
    document_id: str
    title: str
    source: str | None = None
    heading: str = ""
    snippet: str
    text: str
    score: float
    ranks: dict[str, int]


class SearchResults(BaseModel):
    mode: Mode
    hits: list[ChunkHit]


class DocumentDeleted(BaseModel):
    id: str
    deleted: bool = True
    chunks: int
