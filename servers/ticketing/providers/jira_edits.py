"""What a Jira `update_ticket` writes, and the checks before it (`servers.ticketing.providers.jira`): only the
fields whose value differs from the issue read (outside review r38b #8; `servers.ticketing.providers.unchanged`),
the version compared only when something would change (r38b #2), and a description markdown cannot carry never
replaced (outside review domains26 #3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from servers.kit.errors import DomainError
from servers.ticketing.model import Ticket
from servers.ticketing.normal import fold, is_email, same_name
from servers.ticketing.providers.adf import adf_to_markdown, lossy_nodes, markdown_to_adf
from servers.ticketing.providers.jira_map import PRIORITY_TO_JIRA
from servers.ticketing.providers.unchanged import same_labels, same_text, same_user

TOOL_FIELDS = {"summary": "title", "description": "description", "priority": "priority", "labels": "labels",
               "assignee": "assignee", "issuetype": "type"}
"""Jira's field for each `update_ticket` argument, as the answer's `changed` names them."""


async def changed_fields(current: Ticket, changes: dict[str, Any], account_id: Callable[[str], Awaitable[str]]) -> dict[str, Any]:
    """Jira's `fields` for what `changes` asks that `current` does not hold already: the description compared
    after its ADF round trip, labels as a set, the priority and type as the tools read them, the assignee by
    accountId (`account_id` looks an email up, unless it is the assignee's own)."""
    fields: dict[str, Any] = {}
    if "title" in changes and changes["title"] != current.title:
        fields["summary"] = changes["title"]
    if "description" in changes:
        adf = markdown_to_adf(changes["description"] or "")
        if not same_text(current.description, adf_to_markdown(adf)):
            fields["description"] = adf
    if "priority" in changes and changes["priority"] != current.priority:
        fields["priority"] = {"name": PRIORITY_TO_JIRA[changes["priority"]]}
    if "labels" in changes and not same_labels(current.labels, changes["labels"]):
        fields["labels"] = changes["labels"]
    if "assignee" in changes:
        who, held = changes["assignee"], current.assignee
        if not (held and who and is_email(who) and held.email and fold(held.email) == fold(who)):
            account = await account_id(who) if who else None
            if not same_user(held.id if held else None, account):
                fields["assignee"] = {"accountId": account} if account else None
    if "type" in changes and not same_name(changes["type"], current.type):
        fields["issuetype"] = {"name": changes["type"]}
    return fields


def check_read_version(ticket_id: str, current: Ticket, expected_version: str | None) -> None:
    """`conflict` when the issue read just before the write is not at `expected_version` (its `updated`)."""
    if expected_version is not None and current.version != expected_version:
        raise DomainError(
            "conflict",
            f"{ticket_id} changed since you read it (updated {current.version}); get it again and reapply",
            details={"current_version": current.version},
        )


def refuse_lossy_description(ticket_id: str, description: Any) -> None:
    """Refuse to replace a description (ADF) holding content markdown cannot carry (`adf.lossy_nodes`): the
    markdown the agent read lacks it, so writing it back would erase it from Jira (outside review domains26 #3)."""
    lossy = lossy_nodes(description)
    if lossy:
        raise DomainError(
            "invalid_argument",
            f"{ticket_id}'s description holds content that markdown cannot carry ({', '.join(lossy[:8])}); replacing the "
            "description here would erase it from Jira. Nothing was changed. Edit the description in Jira itself, or "
            "add your text with add_comment instead",
            details={"field": "description", "unsupported": lossy[:20]})
