"""Who may change what in the knowledge graph. The graph is one shared knowledge base, like the
documents, and like them each piece remembers who wrote it (`owner`: the qualified principal; NULL for
the local operator, or from before owners were kept):

- anyone with write access creates entities and relations and adds observations, to any entity;
  what they add is theirs (adding never changes what another caller wrote);
- an **entity** is deleted (with everything attached to it: its observations and relations,
  whoever added them) only by its creator or an admin;
- an **observation** is deleted by whoever added it, the owner of its entity, or an admin;
- a **relation** is deleted by whoever created it, the owner of either entity it links, or an admin.

Refused: `forbidden`, naming neither the writer nor anything the caller cannot read anyway, and the
whole call writes nothing. Entities, types and relations cannot be modified otherwise (as in the
reference server), so these are all the graph's writes.
"""

from __future__ import annotations

from servers.kit.errors import DomainError
from servers.memory.document_writes import Writer

MIGRATION = """ALTER TABLE entities ADD COLUMN owner TEXT; ALTER TABLE observations ADD COLUMN owner TEXT;
ALTER TABLE relations ADD COLUMN owner TEXT"""


def owner_of(writer: Writer | None) -> str | None:
    """The owner a write by `writer` records (None: the local operator, or in-process code)."""
    return writer.owner if writer is not None else None


def check(writer: Writer | None, what: str, field: str, owners: tuple[str | None, ...]) -> None:
    """`forbidden` unless `writer` (None: in-process code) is an admin or one of `owners`."""
    if writer is None or writer.admin or (writer.owner is not None and writer.owner in owners):
        return
    raise DomainError("forbidden", f"{what} was written by another caller; deleting it needs the admin scope. Nothing was "
                      "deleted: ask its writer or an admin, or leave it out of this call.", details={"field": field})
