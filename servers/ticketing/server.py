"""The ticketing tool surface. It only knows `TicketingBackend`; which system answers is config."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from pydantic import Field

from hub.datadir import default_data_dir
from servers.kit.errors import DomainError
from servers.kit.providers import Provider, Providers
from servers.kit.store import Store
from servers.kit.tools import configure_domain, deleted_lately, domain_examples, domain_tool, forget_deleted
from servers.kit.webhooks import attach_webhooks
from servers.ticketing.backend import ProjectAdmin, TicketingBackend
from servers.kit.text import refuse_blank
from servers.ticketing.checks import label_list, refuse_control_chars
from servers.ticketing.normal import nfc
from servers.ticketing.model import (
    Comment,
    CommentPage,
    Deleted,
    Include,
    Link,
    Metadata,
    NewTicket,
    Priority,
    Project,
    SearchQuery,
    Status,
    Ticket,
    TicketPage,
    TicketPatch,
    UserList,
)

PROVIDERS = Providers("ticketing", {
    "embedded": Provider("servers.ticketing.store:EmbeddedTicketing"),
    "jira": Provider("servers.ticketing.providers.jira:JiraTicketing",
                     ("JIRA_BASE_URL", "JIRA_OAUTH_TOKEN|JIRA_EMAIL+JIRA_API_TOKEN")),
    "github": Provider("servers.ticketing.providers.github:GitHubTicketing", ("GITHUB_REPO", "GITHUB_TOKEN")),
    "servicenow": Provider("servers.ticketing.providers.servicenow:ServiceNowTicketing", (
        "SERVICENOW_INSTANCE",
        "SERVICENOW_CLIENT_ID+SERVICENOW_CLIENT_SECRET+SERVICENOW_REFRESH_TOKEN|SERVICENOW_USER+SERVICENOW_PASSWORD")),
    "zendesk": Provider("servers.ticketing.providers.zendesk:ZendeskTicketing",
                        ("ZENDESK_SUBDOMAIN|ZENDESK_BASE_URL", "ZENDESK_OAUTH_TOKEN|ZENDESK_EMAIL+ZENDESK_API_TOKEN")),
})

Id = Annotated[str, Field(description="Ticket id or key, e.g. OPS-12.", min_length=1, max_length=100)]
Limit = Annotated[int, Field(ge=1, le=100, description="Items per page.")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page; omit for the first page.")]
ProjectKey = Annotated[str, Field(min_length=1, max_length=50, description="Project key, e.g. OPS (get_metadata lists them).")]
Labels = Annotated[list[str] | None, Field(description="Label names, e.g. ['frontend'].")]
Assignee = Annotated[str | None, Field(description="User id or email (find_users).")]
TicketType = Annotated[str | None, Field(description="bug, task, incident, ... (get_metadata lists them).")]
IdempotencyKey = Annotated[
    str | None, Field(default=None, max_length=200, description="Retrying with the same key returns the first result.")
]


VERSION_CHECK = "Checked just before the write (best effort: a change made in the moment between is not detected)."
"""What `expected_version` guarantees on a backend that does not say (`version_check`, outside review domains27 #3)."""


def make_backend(name: str | None = None, data_dir: Path | None = None) -> TicketingBackend:
    """The backend named by `name`, else `$TICKETING_BACKEND`, else the embedded one (`PROVIDERS`)."""
    return PROVIDERS.make(name, data_dir)


def create_server(backend: TicketingBackend | None = None) -> MCPServer:
    """The ticketing MCP server over `backend` (default: from the environment)."""
    backend = backend or make_backend()
    version_check = getattr(backend, "version_check", VERSION_CHECK)
    # Idempotency records live beside the embedded data, or in their own file for provider backends.
    embedded_store = getattr(backend, "store", None) or Store(default_data_dir() / "ticketing-idempotency.sqlite", [])
    mcp = MCPServer("ticketing", instructions="Tickets in one normalized shape, whatever system holds them.")
    configure_domain(mcp, open_world=backend.name != "embedded", idempotency=embedded_store, examples=domain_examples(__package__))
    attach_webhooks(mcp, "ticketing", embedded_store, ("github", "jira", "zendesk", "servicenow"), ("ticket",))

    @domain_tool(mcp, read_only=True)
    async def search_tickets(
        text: Annotated[str | None, Field(max_length=1000, description="Words to find in title, description or comments.")] = None,
        status: Annotated[list[Status] | None, Field(description="Any of these statuses, e.g. ['open', 'in_progress'] for unresolved.")] = None,
        assignee: Annotated[str | None, Field(description="Assigned to this user id or email (find_users).")] = None,
        project: Annotated[str | None, Field(description="Project key, e.g. OPS.")] = None,
        labels: Labels = None,
        priority: Annotated[list[Priority] | None, Field(description="Any of these priorities, e.g. ['high', 'critical'].")] = None,
        type: TicketType = None,
        updated_since: Annotated[datetime | None, Field(description="Only tickets updated after this time (ISO 8601).")] = None,
        native_query: Annotated[
            str | None, Field(description="Passed to the provider as is: JQL, ServiceNow encoded query, GitHub/Zendesk search.")
        ] = None,
        limit: Limit = 25,
        cursor: Cursor = None,
    ) -> TicketPage:
        """Search or list tickets matching words and filters (status, assignee, project, priority, labels); to read
        one ticket whose id you know, use get_ticket.
        Find tickets by text (matched literally) and filters; project keys are case-insensitive.
        Page on by passing next_cursor with the same filters. Newest created first (Zendesk filtered searches
        and Jira native queries: the provider's order); a walk returns each ticket that matched throughout once
        while others write (Jira: never twice)."""
        text, labels, assignee, project = nfc(text), nfc(labels), nfc(assignee), nfc(project)  # one canonical form (servers.ticketing.normal)
        query = SearchQuery(text=text, status=status, assignee=assignee, project=project, labels=labels,
                            priority=priority, type=type, updated_since=updated_since, native_query=native_query)
        return await backend.search(query, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_ticket(
        id: Id,
        include: Annotated[list[Include] | None, Field(
            description="Extras to add: comments, transitions (allowed next statuses), links, raw.")] = None,
    ) -> Ticket:
        """Read one ticket whose id or key you know (e.g. OPS-12); to find tickets by words or filters, use
        search_tickets.
        One ticket; include comments, transitions (allowed next statuses), links, or the raw payload."""
        return await backend.get(id, include or [])

    @domain_tool(mcp, read_only=True)
    async def list_comments(id: Id, limit: Limit = 50, cursor: Cursor = None) -> CommentPage:
        """Read the comment thread (discussion, replies, internal notes) of one ticket.
        A ticket's comments, oldest first, public and internal; next_cursor pages on, stable while others write."""
        return await backend.list_comments(id, limit, cursor)

    @domain_tool(mcp, read_only=True)
    async def get_metadata(
        project: Annotated[str | None, Field(description="Project key, e.g. OPS; default all projects.")] = None,
        ticket_id: Annotated[str | None, Field(description="Ticket id or key, e.g. OPS-12, to list its allowed transitions.")] = None,
    ) -> Metadata:
        """What the tracker allows: the values to use when filing or moving a ticket.
        Statuses, types, priorities, required fields and known projects; with ticket_id, its allowed transitions."""
        return await backend.metadata(project, ticket_id)

    @domain_tool(mcp, read_only=True)
    async def find_users(
        query: Annotated[str, Field(min_length=1, max_length=200, description="Part of a name or an email address.")],
        limit: Limit = 10,
    ) -> UserList:
        """Look up people (assignees, reporters) in the ticketing system to get their user ids.
        Users matching a name or email, with the ids the other tools take."""
        return UserList(users=await backend.find_users(nfc(query), limit))

    @domain_tool(mcp)
    async def create_ticket(
        project: ProjectKey,
        title: Annotated[str, Field(min_length=1, max_length=255, description="One-line summary.")],
        description: Annotated[str, Field(max_length=32_000, description="Details, in Markdown.")] = "",
        type: Annotated[str, Field(description="bug, task, incident, ... (get_metadata lists them).")] = "task",
        priority: Annotated[Priority | None, Field(description="Default: the tracker's default.")] = None,
        labels: Labels = None,
        assignee: Assignee = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Ticket:
        """Open (file, report, log) a new ticket: a bug, incident, task or request.
        Create a ticket in an existing project (an unknown key is refused with the known ones; on
        the embedded backend, create_project adds one). Give an idempotency_key so a retry cannot
        create a duplicate."""
        refuse_control_chars(project=project, title=title, description=description, type=type, labels=labels)
        refuse_blank(title=title, type=type)
        project, title, description, type, assignee = nfc(project), nfc(title), nfc(description), nfc(type), nfc(assignee)
        new = NewTicket(project=project, title=title, description=description, type=type, priority=priority,
                        labels=label_list(labels) or [], assignee=assignee)
        return await backend.create(new, idempotency_key)

    async def update_ticket(
        id: Id,
        title: Annotated[str | None, Field(min_length=1, max_length=255, description="New one-line summary.")] = None,
        description: Annotated[str | None, Field(max_length=32_000, description="New description (Markdown).")] = None,
        priority: Annotated[Priority | None, Field(description="New priority.")] = None,
        labels: Annotated[list[str] | None, Field(description="The full new label list (replaces the old one).")] = None,
        assignee: Annotated[str | None, Field(description='User id or email (find_users); "" unassigns.')] = None,
        type: TicketType = None,
        expected_version: str | None = None,  # described below, per backend
    ) -> Ticket:
        """Edit a ticket: title, description, priority, assignee, labels or type.
        Change fields of a ticket (status changes go through transition_ticket). Values equal to the
        stored ones change nothing: such an update keeps the version (`changed` lists what changed)."""
        given = {k: nfc(v) for k, v in {"title": title, "description": description, "priority": priority,
                                        "labels": label_list(labels), "assignee": assignee, "type": type}.items() if v is not None}
        if not given:
            raise DomainError(
                "invalid_argument",
                "nothing to update: give at least one of title, description, priority, labels, assignee, type; "
                "to change the status use transition_ticket (get_ticket with include=['transitions'] lists the allowed ones)",
            )
        refuse_control_chars(title=title, description=description, type=type, labels=labels)
        refuse_blank(title=title, type=type)
        return await backend.update(id, TicketPatch(**given), expected_version)

    # what `expected_version` guarantees differs by backend (`version_check`); annotations are strings here
    # (`from __future__ import annotations`) and a closure's value cannot be named in one, so it is set as an object
    update_ticket.__annotations__["expected_version"] = Annotated[str | None, Field(
        description=f"The version you read; the update fails with conflict if it changed. {version_check}")]
    domain_tool(mcp, idempotent=True, not_here={
        "status": "To change the status use transition_ticket (get_ticket with include=['transitions'] lists the allowed ones)"})(
        update_ticket)

    async def transition_ticket(
        id: Id, to: Annotated[str, Field(description="open, in_progress, on_hold, resolved, closed, or a native status.")],
        expected_version: str | None = None,  # described below, per backend
    ) -> Ticket:
        """Change a ticket's status: start, resolve, close, reopen, mark done.
        Move a ticket to another status; if not allowed, the error lists the allowed ones."""
        return await backend.transition(id, nfc(to), expected_version)  # "Résolu" typed in NFD is the provider's "Résolu"

    transition_ticket.__annotations__["expected_version"] = Annotated[str | None, Field(
        description=f"The version you read; the move fails with conflict if it changed. {version_check}")]
    domain_tool(mcp)(transition_ticket)

    @domain_tool(mcp)
    async def add_comment(
        id: Id,
        body: Annotated[str, Field(min_length=1, max_length=32_000, description="Markdown.")],
        public: Annotated[bool, Field(description="False for an internal note.")] = True,
        idempotency_key: IdempotencyKey = None,
    ) -> Comment:
        """Write a comment, reply or note on a ticket.
        Comment on a ticket, publicly or as an internal note."""
        refuse_control_chars(body=body)
        refuse_blank(body=body)
        return await backend.add_comment(id, nfc(body), public)

    @domain_tool(mcp, idempotent=True)
    async def link_tickets(
        id: Id, other_id: Id,
        type: Annotated[str, Field(description='"blocks" (id blocks other_id), "relates to" or "duplicates".')] = "relates to",
    ) -> Link:
        """Relate two tickets: one blocks another, duplicates it, or relates to it.
        Link two tickets ("blocks", "relates to", "duplicates")."""
        refuse_control_chars(type=type)
        return await backend.link(id, other_id, nfc(type))

    @domain_tool(mcp, destructive=True, idempotent=True)
    async def delete_ticket(
        id: Id, confirm: Annotated[bool, Field(description="Must be true: deletion cannot be undone.")] = False
    ) -> Deleted:
        """Permanently remove a ticket (to close it, use transition_ticket).
        Delete a ticket and its comments for good. Requires confirm=true."""
        if not confirm:
            raise DomainError("invalid_argument", f"deleting {id} cannot be undone: call again with confirm=true")
        try:
            deleted = await backend.get(id, [])  # its canonical id: keys that created it must not answer with it
        except DomainError as exc:
            if exc.body.code == "not_found" and (await deleted_lately(mcp, id) or await deleted_lately(mcp, id.upper())):
                return Deleted(id=id)  # a retry of the delete that removed it: answered as then
            raise
        comments, cursor = [], None
        while True:  # the keys that added its comments must not answer with them either (outside review)
            page = await backend.list_comments(deleted.id, 100, cursor)
            comments += [comment.id for comment in page.comments]
            if not (cursor := page.next_cursor):
                break
        await backend.delete(id)
        for record in (deleted.id, *comments):
            await forget_deleted(mcp, record)
        return Deleted(id=id)

    if isinstance(backend, ProjectAdmin):  # only backends that own their projects (the embedded one)

        @domain_tool(mcp, idempotent=True)
        async def create_project(
            key: Annotated[str, Field(min_length=1, max_length=20, description="Letters, digits, _; e.g. PAY.")],
        ) -> Project:
            """Create a ticket project (a key prefix such as OPS).
            Create a project so create_ticket accepts its key (stored upper case; returns the
            existing one with created=false if the key exists in any case)."""
            refuse_control_chars(key=key)
            return await backend.create_project(key)

    mcp.backend = backend  # type: ignore[attr-defined]  # for the runner's --demo and for tests
    return mcp
