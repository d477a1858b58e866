"""Records of the memory domain."""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from servers.kit.text import is_blank

Kind = Literal["fact", "preference", "note"]
Mode = Literal["hybrid", "keyword", "semantic"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(value: str) -> str:
    if (found := _CONTROL.search(value)) is not None:
        raise ValueError(f"a name may not contain control characters (found U+{ord(found.group()):04X} at position "
                         f"{found.start()}): remove it")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(f"text may not contain NUL characters (U+0000 at position {value.index(chr(0))}): remove it")
    return value


def _visible(value: str) -> str:
    """Required text must show something: "", blanks and invisible-only text (U+200B, U+FEFF, ...) are refused."""
    if is_blank(value):
        raise ValueError("is empty (only spaces or invisible characters such as U+200B): give visible text")
    return value


def _visible_if_given(value: str) -> str:
    """`_visible`, but "" stays "" (an optional title or scope part left empty)."""
    return _visible(value) if value else value


def nfc(value: str) -> str:
    """`value` in Unicode NFC: canonically equivalent spellings (`é` as one code point or as `e` + accent,
    as macOS and some keyboards send it) are one title, tag, scope or duplicate (outside review)."""
    return unicodedata.normalize("NFC", value)


# Keys (scope parts, tags, titles) are kept in NFC, so equivalent spellings name the same thing. Required
# text (`_visible`) that shows nothing is refused: `str.strip()` keeps U+200B, U+2060, U+FEFF (outside review).
ScopePart = Annotated[str, Field(max_length=200), AfterValidator(_no_control), AfterValidator(_visible_if_given), AfterValidator(nfc)]
TagName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control), AfterValidator(_visible),
                   AfterValidator(nfc)]
DocumentTitle = Annotated[str, Field(max_length=500), AfterValidator(_no_control), AfterValidator(_visible_if_given),
                          AfterValidator(nfc)]
HUB_REQUEST_BYTES = 4 * 1024 * 1024
"""The hub's default cap on one HTTP request body (`hub.http.max_body_bytes`)."""
MAX_DOCUMENT_CHARS = 330_000
"""The longest document text one request can carry whatever its characters: in JSON a character may take 12
bytes (one outside the BMP, escaped as two `\\uXXXX`), and the other arguments and the envelope may take
~140 KB, so 330,000 × 12 + 140 KB fits in `HUB_REQUEST_BYTES`. The schema advertised 5,000,000 before, and a
document under it was cut off by the hub's 413 with the client's session (outside review memory26 D7)."""


def _fits_request(value: str) -> str:
    if len(value) > MAX_DOCUMENT_CHARS:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_DOCUMENT_CHARS} fit in one request (the hub "
                         f"refuses a request over {HUB_REQUEST_BYTES // (1024 * 1024)} MiB, and JSON may escape a character "
                         "to 12 bytes): put the document in a file inside MEMORY_ALLOWED_PATHS and give it as path, or "
                         "split it into parts")
    return value


DocumentText = Annotated[str, Field(json_schema_extra={"maxLength": MAX_DOCUMENT_CHARS}), AfterValidator(_fits_request),
                         AfterValidator(_no_nul)]
Identifier = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_control)]
EntityName = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_control), AfterValidator(_visible)]
TypeName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_control), AfterValidator(_visible)]
ObservationText = Annotated[str, Field(max_length=5000), AfterValidator(_no_nul), AfterValidator(_visible)]
ShortText = Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)]
MemoryText = Annotated[str, Field(min_length=1, max_length=20000), AfterValidator(_no_nul), AfterValidator(_visible)]
QueryText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_nul), AfterValidator(_visible)]
MAX_METADATA_CHARS = 20_000


class Scope(BaseModel):
    """Who a memory belongs to. Scopes are isolated: a search in one never sees another's memories. Closed: a
    misspelled key (`projet`) is refused, never read as the bare scope."""

    model_config = ConfigDict(extra="forbid")

    user: ScopePart | None = None
    agent: ScopePart | None = None
    project: ScopePart | None = None

    def key(self) -> str:
        return "\x1f".join(part or "" for part in (self.user, self.agent, self.project))


class MemoryVersion(BaseModel):
    """A memory as it was before a write changed it."""

    version: str
    content: str
    kind: Kind
    tags: list[str]
    source: str | None = None
    metadata: dict[str, Any]
    valid_from: _dt.datetime = Field(description="When this version was written.")
    replaced_at: _dt.datetime = Field(description="When the next version replaced it.")
    replaced_by: Literal["remember", "update_memory"] = Field(description="The tool whose call replaced it.")


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
    previous_versions: int = Field(0, description="How many earlier versions the history holds (ask with include_history).")
    history: list[MemoryVersion] | None = Field(None, description="Earlier versions, oldest first; only with include_history=true.")


Action = Literal["created", "updated", "unchanged"]
Changed = Literal["content", "kind", "tags", "metadata", "source"]


class Remembered(BaseModel):
    """What `remember` stored: a new memory, an existing one updated to the newer statement, or nothing."""

    memory: Memory
    action: Action = Field(description="created: a new memory; updated: an existing memory of the same fact now holds what you "
                           "sent (its previous version is in its history); unchanged: it already held exactly this.")
    stored_text: str = Field(description="The text the memory holds now.")
    replaced_text: str | None = Field(None, description="The text this call replaced, when it replaced one.")
    changed: list[Changed] = Field(default_factory=list, description="The fields this call changed on an existing memory.")
    match: Literal["exact", "edited", "restated", "corrected"] | None = Field(
        None, description="Why an existing memory was taken for the same fact: the same text, the same statement with a new "
        "value, the same fact in other words, or a correction (actually, now, moved to, ...) of the same subject.")
    merged: bool = Field(description="True when an existing memory of the same fact took this statement (action is not created).")
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
    status: Literal["created", "replaced", "retagged", "updated", "unchanged"] = Field(
        description="replaced: new content re-indexed; retagged: same content, new tags; updated: same content, new date "
        "(and maybe tags); unchanged: nothing to do.")
    changed: list[Literal["content", "title", "tags", "date"]] = Field(
        default_factory=list, description="The fields this call changed on an existing document.")


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
