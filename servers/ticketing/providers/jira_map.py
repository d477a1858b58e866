"""How the Jira connector reads Jira's shapes: issues, comments, users, transitions and errors
(`servers.ticketing.providers.jira`)."""

from __future__ import annotations

from typing import Any

from servers.kit.http import common_error_text
from servers.ticketing.model import Comment, Include, Link, Ticket, Transition, User
from servers.ticketing.providers.adf import adf_to_markdown
from servers.ticketing.providers.created import is_marker
from servers.ticketing.providers.jira_query import jira_time
from servers.ticketing.providers.jira_status import normalize_status

PRIORITY_TO_JIRA = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}
PRIORITY_FROM_JIRA = {"highest": "critical", "high": "high", "medium": "medium", "low": "low", "lowest": "low"}
JIRA_LINK_TYPES = {"blocks": "Blocks", "relates to": "Relates", "duplicates": "Duplicate"}


def error_text(body: dict[str, Any]) -> list[str]:
    """Jira's error shape: `errorMessages` (a list) and `errors` (field -> message)."""
    errors = body.get("errors")
    fields = [f"{k}: {v}" for k, v in errors.items()] if isinstance(errors, dict) else []
    return [*(body.get("errorMessages") or []), *fields, *common_error_text(body)]


def to_transition(raw: dict[str, Any]) -> Transition:
    """A Jira transition, with the status it leads to normalized."""
    target = raw.get("to") or {}
    return Transition(id=str(raw["id"]), name=raw["name"], to_status=normalize_status(target), native_to=target.get("name", raw["name"]))


def to_user(raw: dict[str, Any] | None) -> User | None:
    """A Jira user (accountId, displayName, emailAddress when visible)."""
    if not raw:
        return None
    return User(id=raw.get("accountId", ""), name=raw.get("displayName", ""), email=raw.get("emailAddress"))


def to_comment(raw: dict[str, Any]) -> Comment:
    """A Jira comment; internal when restricted to a role or group, or a JSM internal comment."""
    internal = bool(raw.get("visibility")) or any(  # restricted to a role or group, or a JSM internal comment
        p.get("key") == "sd.public.comment" and (p.get("value") or {}).get("internal") for p in raw.get("properties", [])
    )
    author = to_user(raw.get("author"))
    return Comment(id=str(raw["id"]), author=author.name if author else None, body=adf_to_markdown(raw.get("body")),
                   public=not internal, created_at=jira_time(raw["created"]))


def to_ticket(issue: dict[str, Any], include: list[Include], base_url: str) -> Ticket:
    """A Jira issue as a Ticket; `base_url` makes its browse link."""
    fields = issue.get("fields") or {}
    status = fields.get("status") or {}
    priority = (fields.get("priority") or {}).get("name")
    ticket = Ticket(
        id=issue["key"], provider="jira", remote_id=str(issue["id"]), key=issue["key"],
        project=(fields.get("project") or {}).get("key", issue["key"].split("-")[0]),
        title=fields.get("summary", ""), description=adf_to_markdown(fields.get("description")),
        status=normalize_status(status), native_status=status.get("name", ""),
        priority=PRIORITY_FROM_JIRA.get(priority.lower()) if priority else None,  # type: ignore[arg-type]
        type=(fields.get("issuetype") or {}).get("name", "Task"),
        labels=[label for label in fields.get("labels") or [] if not is_marker(label)],
        assignee=to_user(fields.get("assignee")), reporter=to_user(fields.get("reporter")),
        created_at=jira_time(fields["created"]), updated_at=jira_time(fields["updated"]),
        url=f"{base_url}/browse/{issue['key']}", version=fields["updated"],
    )
    if "comments" in include:
        ticket.comments = [to_comment(c) for c in (fields.get("comment") or {}).get("comments", [])]
    if "transitions" in include:
        ticket.transitions = [to_transition(t) for t in issue.get("transitions", [])]
    if "links" in include:
        ticket.links = []
        for link in fields.get("issuelinks") or []:
            if "outwardIssue" in link:
                ticket.links.append(Link(type=link["type"]["outward"], direction="outward", ticket=link["outwardIssue"]["key"]))
            if "inwardIssue" in link:
                ticket.links.append(Link(type=link["type"]["inward"], direction="inward", ticket=link["inwardIssue"]["key"]))
    if "raw" in include:
        ticket.raw = issue
    return ticket
