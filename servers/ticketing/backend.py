"""The one protocol every ticketing backend implements; the tool surface only sees this."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from servers.ticketing.model import (
    Comment,
    CommentPage,
    Include,
    Link,
    Metadata,
    NewTicket,
    Project,
    SearchQuery,
    Ticket,
    TicketPage,
    TicketPatch,
    User,
)


class TicketingBackend(Protocol):
    name: str

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> TicketPage: ...

    async def get(self, ticket_id: str, include: list[Include]) -> Ticket: ...

    async def list_comments(self, ticket_id: str, limit: int, cursor: str | None) -> CommentPage: ...

    async def metadata(self, project: str | None, ticket_id: str | None) -> Metadata: ...

    async def find_users(self, query: str, limit: int) -> list[User]: ...

    async def create(self, ticket: NewTicket, idempotency_key: str | None = None) -> Ticket:
        """Create once: a provider's unclear answer is settled by a marker the key derives (`providers.created`)."""
        ...

    async def update(self, ticket_id: str, patch: TicketPatch, expected_version: str | None) -> Ticket: ...

    async def transition(self, ticket_id: str, to: str, expected_version: str | None = None) -> Ticket:
        """Move to status `to`; `conflict` with `current_version` when `expected_version` is stale."""
        ...

    async def add_comment(self, ticket_id: str, body: str, public: bool) -> Comment: ...

    async def link(self, ticket_id: str, other_id: str, link_type: str) -> Link: ...

    async def delete(self, ticket_id: str) -> None: ...


@runtime_checkable
class ProjectAdmin(Protocol):
    """A backend that owns its projects (the embedded one); providers keep theirs in the provider,
    so the `create_project` tool is offered only when the backend implements this."""

    async def create_project(self, key: str) -> Project: ...
