"""What a GitHub `update_ticket` writes: only what differs from the issue read (outside review r38b #8;
`servers.ticketing.providers.unchanged`), as the PATCH body the connector sends
(`servers.ticketing.providers.github`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servers.kit.errors import DomainError
from servers.ticketing.model import Ticket
from servers.ticketing.normal import fold
from servers.ticketing.providers.github_map import PRIORITY
from servers.ticketing.providers.unchanged import same_labels, same_text, same_user
from servers.ticketing.providers.users import github_login


@dataclass
class Edit:
    """The PATCH `body` for an update, whether its priority alone changes (written label by label), and the
    tool fields it changes (empty: nothing to write)."""

    body: dict[str, Any] = field(default_factory=dict)
    priority: str | None = None
    changed: list[str] = field(default_factory=list)


def issue_edit(raw: dict[str, Any], read: Ticket, changes: dict[str, Any]) -> Edit:
    """The edit that brings issue `raw` (read as `read`) to `changes`, leaving out every value it already holds:
    the body compared without the create marker, labels as a set in any case (GitHub's label names ignore it),
    assignees by login in any case. A type without the full new labels is `invalid_argument`."""
    kept = [label["name"] for label in raw.get("labels", []) if not PRIORITY.match(label["name"])]
    if "type" in changes and "labels" not in changes:
        raise DomainError(
            "invalid_argument",
            f"GitHub keeps an issue's type as one of its labels ({', '.join(kept) or 'none now'}) and cannot tell which "
            "one it is: give labels (the full new list, without the old type's label) together with type", details={
                "field": "type", "labels": kept})
    edit = Edit()
    if "title" in changes and changes["title"] != raw["title"]:
        edit.body["title"] = changes["title"]
        edit.changed.append("title")
    if "description" in changes and not same_text(read.description, changes["description"]):
        edit.body["body"] = changes["description"]
        edit.changed.append("description")
    if "assignee" in changes:
        wanted = [github_login(changes["assignee"])] if changes["assignee"] else []
        held = [a["login"] for a in raw.get("assignees") or ([raw["assignee"]] if raw.get("assignee") else [])]
        if len(wanted) != len(held) or not all(same_user(h, w) for h, w in zip(held, wanted, strict=True)):
            edit.body["assignees"] = wanted
            edit.changed.append("assignee")
    new_priority = "priority" in changes and changes["priority"] != read.priority
    if new_priority:
        edit.changed.append("priority")
    if "labels" not in changes:
        edit.priority = changes["priority"] if new_priority else None
        return edit
    labels = list(changes["labels"])  # the caller gave the full list: it replaces the one read
    kind = changes.get("type") or ""
    if kind not in ("task", "") and fold(kind) not in {fold(label) for label in labels}:
        labels.append(kind)  # the type is a label, as `create` writes it
    if not same_labels(kept, labels, any_case=True):
        edit.changed.append("labels")
    if new_priority or "labels" in edit.changed:
        priority = changes.get("priority") or read.priority
        edit.body["labels"] = labels + ([f"priority: {priority}"] if priority else [])
    return edit
