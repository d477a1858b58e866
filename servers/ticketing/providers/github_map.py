"""How the GitHub connector reads GitHub's shapes: issues, comments, transitions, errors and the create marker
(`servers.ticketing.providers.github`)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from servers.kit.http import common_error_text, common_rate_limit
from servers.ticketing.model import Comment, Include, Ticket, Transition, User

PRIORITY = re.compile(r"^priority:\s*(critical|high|medium|low)$", re.I)
"""The label that holds an issue's priority."""
MARKER = re.compile(r"\n*<!-- mcp-hub create mcph-[0-9a-f]{24} -->\s*$")


def marker_comment(marker: str) -> str:
    """The create marker as GitHub keeps it: an HTML comment at the end of the body, which markdown does not render."""
    return f"\n\n<!-- mcp-hub create {marker} -->"


def to_comment(c: dict[str, Any]) -> Comment:
    """A GitHub issue comment (every one is public)."""
    return Comment(id=str(c["id"]), author=(c.get("user") or {}).get("login"), body=c.get("body") or "", public=True,
                   created_at=c["created_at"])


def error_text(body: dict[str, Any]) -> list[str]:
    """GitHub's error shape: `message`, and `errors` (a list of {resource, field, code, message?})."""
    details = [e.get("message") or " ".join(str(e[k]) for k in ("field", "code") if e.get(k))
               for e in body.get("errors") or [] if isinstance(e, dict)]
    return [*common_error_text(body), *details]


SECONDARY_LIMIT = ("secondary rate limit", "abuse detection")
"""How GitHub's `message` names a secondary limit ("You have exceeded a secondary rate limit…", earlier "You have
triggered an abuse detection mechanism"), answered 403 or 429, with `Retry-After` only sometimes."""


def rate_limit(response: httpx.Response, body: Any) -> float | None:
    """GitHub's limits: the primary one (`X-RateLimit-Remaining: 0`) and its secondary ones (concurrent requests, writes a
    minute), which leave the primary count alone and say so in `message` only. Without a header, at least a minute, as
    GitHub asks (repeating sooner may get the integration banned)."""
    message = body.get("message") if isinstance(body, dict) else None
    if response.status_code in (403, 429) and isinstance(message, str) and any(words in message.lower() for words in SECONDARY_LIMIT):
        return 60.0
    return common_rate_limit(response, body)


def transitions(raw: dict[str, Any]) -> list[Transition]:
    """The moves GitHub offers an issue: close (as completed or not planned) when open, reopen when closed."""
    if raw["state"] == "open":
        return [Transition(id="close-completed", name="Close as completed", to_status="resolved", native_to="closed"),
                Transition(id="close-not-planned", name="Close as not planned", to_status="closed", native_to="closed")]
    return [Transition(id="reopen", name="Reopen", to_status="open", native_to="open")]


def to_ticket(raw: dict[str, Any], repo: str, default: str, include: list[Include]) -> Ticket:
    """An issue of `repo` as a Ticket: its id is the number in `default` (GITHUB_REPO), else `owner/name#n`."""
    labels = [label["name"] for label in raw.get("labels", [])]
    priority = next((m.group(1).lower() for label in labels if (m := PRIORITY.match(label))), None)
    closed = raw["state"] == "closed"
    status = ("resolved" if raw.get("state_reason") == "completed" else "closed") if closed else "open"
    user = raw.get("user") or {}
    assignee = (raw.get("assignees") or [raw.get("assignee")] or [None])[0]
    key = f"{repo}#{raw['number']}"
    ticket = Ticket(
        id=key if repo != default else str(raw["number"]), provider="github", remote_id=str(raw["id"]), key=key, project=repo,
        title=raw["title"], description=MARKER.sub("", raw.get("body") or ""), status=status,  # type: ignore[arg-type]
        native_status=raw["state"] + (f" ({raw['state_reason']})" if raw.get("state_reason") else ""),
        priority=priority, type="issue", labels=[label for label in labels if not PRIORITY.match(label)],  # type: ignore[arg-type]
        assignee=User(id=assignee["login"], name=assignee["login"]) if assignee else None,
        reporter=User(id=user["login"], name=user["login"]) if user else None,
        created_at=raw["created_at"], updated_at=raw["updated_at"], url=raw.get("html_url"), version=raw["updated_at"],
    )
    if "transitions" in include:
        ticket.transitions = transitions(raw)
    if "raw" in include:
        ticket.raw = raw
    return ticket
