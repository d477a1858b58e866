"""How the Zendesk connector writes searches and reads Zendesk's shapes: tickets, statuses, errors
(`servers.ticketing.providers.zendesk`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from servers.kit.http import common_error_text
from servers.ticketing.model import Include, Link, SearchQuery, Status, Ticket, Transition, User

STATUS_FROM: dict[str, Status] = {"new": "open", "open": "open", "pending": "on_hold", "hold": "on_hold", "solved": "resolved",
                                  "closed": "closed"}
STATUS_TO = {"open": "open", "in_progress": "open", "on_hold": "hold", "resolved": "solved", "closed": "closed"}
WORKFLOW = {"new": ["open", "pending", "hold", "solved"], "open": ["pending", "hold", "solved"], "pending": ["open", "hold", "solved"],
            "hold": ["open", "pending", "solved"], "solved": ["open", "closed"], "closed": []}
PRIORITY_FROM = {"urgent": "critical", "high": "high", "normal": "medium", "low": "low"}
PRIORITY_TO = {v: k for k, v in PRIORITY_FROM.items()}
TYPES = ["question", "incident", "problem", "task"]


def search_instant(when: datetime) -> str:
    """`when` as Zendesk search takes a date-time: ISO 8601 in UTC, to the second (floored, so a ticket
    updated in the same second is kept). A naive value is taken as UTC, as the embedded store does."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def error_text(body: dict[str, Any]) -> list[str]:
    """Zendesk's error shape: `error` and `description`, and for a refused record (422 `RecordInvalid`) the
    reasons per field in `details` ({"assignee": [{"description": "Assignee: is required when solving a
    ticket"}]}), which say what to fix (outside review domains26 #9: only "Record validation errors" reached
    the agent)."""
    reasons: list[str] = []
    details = body.get("details")
    for field_name, items in (details.items() if isinstance(details, dict) else []):
        for item in items if isinstance(items, list) else [items]:
            text = item.get("description") or item.get("error") if isinstance(item, dict) else item
            if text:
                reasons.append(str(text) if field_name.lower() in str(text).lower() else f"{field_name}: {text}")
    return [*reasons, *common_error_text(body)]


def build_search(query: SearchQuery, group_id: int | None = None) -> str:
    """The search text for `query`; `group_id` is its project resolved (`_group_id`)."""
    if query.native_query:
        return query.native_query if "type:" in query.native_query else f"type:ticket {query.native_query}"
    terms = ["type:ticket"]
    if query.text:
        terms.append(query.text)
    for status in query.status or []:
        terms += [f"status:{s}" for s, n in STATUS_FROM.items() if n == status]
    for priority in query.priority or []:
        terms.append(f"priority:{PRIORITY_TO[priority]}")
    terms += [f"tags:{label}" for label in query.labels or []]
    if query.assignee:
        terms.append(f"assignee:{query.assignee}")
    if query.type:
        terms.append(f"ticket_type:{query.type}")
    if group_id is not None:
        terms.append(f"group:{group_id}")
    if query.updated_since:  # the instant, not its date in its own offset (outside review 18, defect 9)
        terms.append(f"updated>={search_instant(query.updated_since)}")
    return " ".join(terms)


def transitions(status: str) -> list[Transition]:
    """The moves Zendesk's workflow allows from `status` (`WORKFLOW`)."""
    return [Transition(id=s, name=s, to_status=STATUS_FROM[s], native_to=s) for s in WORKFLOW.get(status, [])]


def to_ticket(raw: dict[str, Any], users: dict[str, User], include: list[Include], base: str) -> Ticket:
    """A Zendesk ticket as a Ticket; `users` are its assignee and requester read (`_users`), `base` the account URL."""
    ticket = Ticket(
        id=str(raw["id"]), provider="zendesk", remote_id=str(raw["id"]), key=str(raw["id"]),
        project=str(raw.get("group_id") or ""), title=raw.get("subject") or "", description=raw.get("description") or "",
        status=STATUS_FROM.get(raw["status"], "open"), native_status=raw["status"],
        priority=PRIORITY_FROM.get(raw.get("priority") or ""),  # type: ignore[arg-type]
        type=raw.get("type") or "question", labels=raw.get("tags") or [],
        assignee=users.get(str(raw.get("assignee_id"))), reporter=users.get(str(raw.get("requester_id"))),
        created_at=raw["created_at"], updated_at=raw["updated_at"], url=f"{base}/agent/tickets/{raw['id']}",
        version=raw["updated_at"],
    )
    if "transitions" in include:
        ticket.transitions = transitions(raw["status"])
    if "links" in include:
        ticket.links = [Link(type="incident of", direction="outward", ticket=str(raw["problem_id"]))] if raw.get("problem_id") else []
    if "raw" in include:
        ticket.raw = raw
    return ticket
