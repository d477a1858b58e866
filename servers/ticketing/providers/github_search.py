"""How the GitHub connector narrows and walks `/search/issues` (`servers.ticketing.providers.github`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_OPEN = {"open", "in_progress", "on_hold"}


def instant(when: datetime) -> str:
    """`when` as GitHub takes a time (`since`, `updated:>=`): ISO 8601 in UTC to the second, floored so
    an issue updated in that second is kept; a naive value is taken as UTC."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_terms(statuses: set[str]) -> tuple[list[str], bool]:
    """Search qualifiers that narrow a search to `statuses` (resolved = closed as completed, closed =
    closed any other way: not planned, duplicate, or before GitHub kept reasons), and whether they
    select exactly those (only `resolved` has a qualifier of its own, `reason:completed`); the results
    are filtered by status afterwards either way, and GitHub's count is the total only when exact."""
    if statuses <= _OPEN:
        return ["is:open"], "open" in statuses
    if statuses == {"resolved"}:
        return ["is:closed", "reason:completed"], True
    if statuses <= {"resolved", "closed"}:
        return ["is:closed"], statuses == {"resolved", "closed"}
    return [], {"open", "resolved", "closed"} <= statuses


def search_page(items: list[dict[str, Any]], total_count: int, before: str | None, seen: set[int],
                limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The issues of a `created:<=before` search (newest created first) to show now, and the cursor state for the
    next page (None at the end): the issues created at `before` and already shown (`seen`) are skipped."""
    fresh = [r for r in items if not (r.get("created_at") == before and int(r["number"]) in seen)]
    taken = fresh[:limit]
    if not (taken and (len(fresh) > limit or total_count > len(items))):
        return taken, None
    last = taken[-1]["created_at"]
    kept = {int(r["number"]) for r in taken if r.get("created_at") == last} | (seen if last == before else set())
    return taken, {"before": last, "seen": sorted(kept)}
