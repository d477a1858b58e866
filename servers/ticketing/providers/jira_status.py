"""Jira statuses as the normalized five (open, in_progress, on_hold, resolved, closed), both ways.

Reading: from the status category and name (`normalize_status`). Searching: a status query asks for the
statuses whose normalized kind it is, by id (`status in (…)`), read from `GET /status` — never by status
category, which folded `closed` into `resolved` (both are Done) and `on_hold` into `in_progress` (outside
review domains27 #2): each normalized status query returns exactly the issues that read as that status.
Moving: `pick_transition` chooses the transition a caller's `to` names.
"""

from __future__ import annotations

from typing import Any

from servers.kit.errors import DomainError
from servers.ticketing.model import Status, Transition
from servers.ticketing.normal import name_key, same_name



NOT_DONE_WORDS = ("won't", "wont", "will not", "cancel", "declin", "reject", "duplicate", "obsolete", "cannot reproduce",
                  "invalid", "abandon", "not a bug", "not planned")
"""Done-category statuses that end work without doing it: `closed`, as GitHub's "not planned" is, never `resolved`."""
KIND_WORDS: dict[str, tuple[str, ...]] = {"resolved": ("done", "resolve", "fixed", "complete"), "closed": ("close",),
                                          "in_progress": ("progress", "start"), "on_hold": ("hold", "wait", "block", "pause"),
                                          "open": ("open", "to do", "todo", "backlog", "new")}
"""Words naming the plain way to a status kind, preferred when several transitions lead to that kind."""


def normalize_status(status: dict[str, Any]) -> Status:
    name = str(status.get("name", "")).lower()
    category = str((status.get("statusCategory") or {}).get("key", "new"))
    if any(word in name for word in ("hold", "blocked", "waiting")):
        return "on_hold"
    if category == "done":
        return "closed" if "closed" in name or any(word in name for word in NOT_DONE_WORDS) else "resolved"
    return "in_progress" if category == "indeterminate" else "open"


def pick_transition(ticket_id: str, to: str, transitions: list[Transition]) -> Transition | None:
    """The transition `to` names: by its name or target status, else the one way to that status kind
    (`resolved`, …). Several ways to different statuses of the kind are narrowed to those named plainly for
    it (`KIND_WORDS`: "Done" over "Won't Do"); if that leaves more than one target, `conflict` listing them
    (outside review domains26 #4: "resolved" took the first Done-category move, "Won't Do")."""
    named = next((t for t in transitions if same_name(to, t.name) or same_name(to, t.native_to)), None)
    if named is not None:
        return named
    kind = name_key(to)
    candidates = [t for t in transitions if t.to_status == kind]
    if len({t.native_to for t in candidates}) > 1:
        words = KIND_WORDS.get(kind, ())
        plain = [t for t in candidates if any(w in f"{t.name} {t.native_to}".lower() for w in words)]
        if len({t.native_to for t in plain}) != 1:
            options = [f"{t.name} (→ {t.native_to})" for t in candidates]
            raise DomainError(
                "conflict", f"{ticket_id} has several {kind} statuses it can move to: {', '.join(options)}; nothing was changed. "
                "Call again with to set to one of those names", details={"candidates": [t.name for t in candidates]})
        candidates = plain
    return candidates[0] if candidates else None


def status_values(statuses: list[dict[str, Any]], wanted: set[str]) -> list[str]:
    """JQL values naming every status of `statuses` (`GET /status`) that reads as one of `wanted`: the id,
    unquoted (a quoted value is read as a name first), or the quoted name where no id is given."""
    values = []
    for status in statuses:
        if normalize_status(status) in wanted:
            sid = str(status.get("id") or "")
            values.append(sid if sid.isdigit() else '"' + str(status.get("name", "")).replace("\\", "\\\\").replace('"', '\\"') + '"')
    return sorted(set(values))
