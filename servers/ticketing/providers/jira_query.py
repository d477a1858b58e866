"""How the Jira connector writes JQL values and walks search results (`servers.ticketing.providers.jira`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from servers.kit.errors import DomainError


def jql_instant(instant: datetime, zone: ZoneInfo) -> str:
    """`instant` as a JQL date-time literal Jira reads back as that instant.

    JQL date-times ("yyyy-MM-dd HH:mm") carry no zone: Jira reads them in the time zone of the user
    running the search, from their profile (outside review domains18 #6: a UTC wall-clock time sent for a
    Los Angeles user was read 8 h late). Decision: write the instant as wall-clock time in that user's
    zone (`GET /myself` `timeZone`). Rejected: relative forms ("-90m") drift with the clock between the
    pages of one walk, and epoch milliseconds are not a documented JQL form. JQL has minute precision, so
    the instant is floored to its minute: up to 59 s earlier is included, nothing later is missed. A wall
    time repeated when clocks go back is written so that either reading of it is not after the instant."""
    local = instant.astimezone(zone)
    second = local.replace(fold=1)
    if local.fold == 0 and second.utcoffset() != local.utcoffset():  # the first of two readings: step back
        local = (instant - (local.utcoffset() - second.utcoffset())).astimezone(zone)  # type: ignore[operator]
    return local.strftime("%Y-%m-%d %H:%M")


ORDER = " ORDER BY created DESC, key DESC"
"""A walk's order: a key that never changes and is unique, so an issue updated during a walk keeps its place
(outside review domains27 #1's sibling: `ORDER BY updated DESC` moved it across the page boundary)."""


UNFILTERED = "created <= now()"
"""The bound of a search with no filter (outside review evtick27 #9): Jira Cloud's `/search/jql` refuses JQL
without a restriction ("Unbounded JQL queries are not allowed here"). Every issue was created before now, so
this restricts nothing; it is re-read on each page, and issues created meanwhile sort before the walk's place."""


def walk_position(value: Any) -> tuple[str, str, int]:
    """A cursor's walk position, checked (a crafted cursor is invalid_argument, never a TypeError)."""
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], str)
            and isinstance(value[2], int) and not isinstance(value[2], bool) and len(value[0]) <= 40 and len(value[1]) <= 255):
        raise DomainError("invalid_argument", "cursor is not one this server issued: pass next_cursor from the previous "
                          "page unchanged", details={"field": "cursor"})
    return value[0], value[1], value[2]


def walk_key(issue: dict[str, Any]) -> tuple[str, str, int]:
    """`issue`'s place in ORDER, as a value that is smaller further down the walk (created in UTC, then key)."""
    project, _, number = str(issue.get("key", "")).rpartition("-")
    created = jira_time((issue.get("fields") or {}).get("created") or "1970-01-01T00:00:00.000+0000")
    return created.astimezone(UTC).isoformat(), project, int(number) if number.isdigit() else 0


def jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jira_time(value: str) -> datetime:
    """Jira writes `2026-11-23T10:00:00.000+0000`; Python wants the offset with a colon."""
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    return datetime.fromisoformat(value)
