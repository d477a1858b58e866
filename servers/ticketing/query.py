"""How the embedded store turns a `SearchQuery` into SQL, and what makes two queries "the same"
for a cursor.

Order (decided for issue #16): newest *created* first, by `(created_at, rowid)` descending. Both
never change after a ticket is created, so keyset paging over them returns every matching ticket
exactly once even while tickets are updated, commented on or created between pages (a ticket
created after the walk began sorts before the cursor and is not returned by that walk). Ordering by
`updated_at` ("recent activity") was dropped for the embedded store: an update moves a ticket
across the page boundary, so a walk would skip or repeat it.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC
from typing import Any

from servers.ticketing.model import SearchQuery
from servers.ticketing.normal import fold, is_email

ORDER = "t.created_at DESC, t.rowid DESC"
AFTER = "(t.created_at, t.rowid) < (?, ?)"


def like_pattern(text: str) -> str:
    """`%text%` for `LIKE … ESCAPE '\\'`, with `%`, `_` and `\\` in `text` matching literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def normalized_filters(query: SearchQuery, project: str | None) -> dict[str, Any]:
    """The query's filters in canonical form (sorted, deduplicated, the project's stored key, the
    instant in UTC): equal searches give equal dicts, so a cursor binds to what was asked."""
    return {
        "text": fold(query.text) if query.text else None,
        "status": sorted(set(query.status)) if query.status else None,
        "priority": sorted(set(query.priority)) if query.priority else None,
        "labels": sorted({fold(label.strip()) for label in query.labels}) if query.labels else None,
        "project": project,
        "type": query.type or None,
        "assignee": (fold(query.assignee.strip()) if is_email(query.assignee) else query.assignee) if query.assignee else None,
        "updated_since": query.updated_since.astimezone(UTC).isoformat(timespec="milliseconds")
        if query.updated_since
        else None,
    }


def where_clause(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """`WHERE` text (over `tickets t LEFT JOIN users u`) and its parameters for normalized filters."""
    clauses, params = ["1=1"], []
    if text := filters["text"]:
        # literal, without case or canonical form (servers.ticketing.normal): `%` and `_` are plain characters
        clauses.append("(instr(fold(t.title), ?) > 0 OR instr(fold(t.description), ?) > 0 OR t.key = ? COLLATE NOCASE)")
        params += [text, text, text]
    for column in ("status", "priority"):
        if values := filters[column]:
            clauses.append(f"t.{column} IN ({','.join('?' * len(values))})")
            params += values
    if filters["project"]:
        clauses.append("t.project = ?")
        params.append(filters["project"])
    if filters["type"]:
        clauses.append("t.type = ?")
        params.append(filters["type"])
    if filters["assignee"]:
        clauses.append("(t.assignee = ? OR fold(u.email) = ? OR u.name = ?)")  # emails folded in normalized_filters
        params += [filters["assignee"]] * 3
    if filters["updated_since"]:
        clauses.append("t.updated_at >= ?")
        params.append(filters["updated_since"])
    for label in filters["labels"] or []:
        clauses.append("EXISTS (SELECT 1 FROM json_each(t.labels) WHERE casefold(value) = ?)")  # as labels are kept once
        params.append(label)
    return " AND ".join(clauses), params


def page_rows(
    db: sqlite3.Connection, filters: dict[str, Any], after: list[Any] | None, limit: int
) -> tuple[list[sqlite3.Row], int, bool]:
    """Up to `limit` matching rows after the keyset position `after`, the total number of matches,
    and whether more rows follow."""
    where, params = where_clause(filters)
    base = f"FROM tickets t LEFT JOIN users u ON u.id = t.assignee WHERE {where}"
    total = db.execute(f"SELECT COUNT(*) {base}", params).fetchone()[0]
    keyset, keyset_params = (f" AND {AFTER}", list(after)) if after else ("", [])
    rows = db.execute(
        f"SELECT t.* {base}{keyset} ORDER BY {ORDER} LIMIT ?", [*params, *keyset_params, limit + 1]
    ).fetchall()
    return rows[:limit], total, len(rows) > limit
