"""Keyset paging for the embedded HRIS lists: employees and time-off requests (`list_changes` pages the
kit's change feed, servers/kit/webhooks/feed.py).

Each list is ordered by keys that do not change under the writes that can happen between two
pages, so a cursor (the position of the last record returned, signed and bound to the normalized
query by `servers.kit.keyset`) resumes strictly after it:
- `search_employees`: in the order employees were added (`rowid`). A name, department or manager
  can change, so ordering by name would let a renamed person skip or repeat across the boundary;
  a walk returns everyone who matched throughout exactly once (someone added during the walk comes
  at its end and is returned too).
- `list_time_off_requests`: by first day, then request id; neither changes (a decision only
  changes the status).
A cursor from another query (other filters), or one crafted or altered, is `invalid_argument`.
"""

from __future__ import annotations

import sqlite3
from datetime import date

from servers.hris.backend import EmployeeFilter
from servers.hris.model import RequestStatus
from servers.kit.keyset import open_cursor, query_fingerprint, sign_cursor


def like_pattern(text: str) -> str:
    """`%text%` for `LIKE … ESCAPE '\\'`, with `%`, `_` and `\\` in `text` matching literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _page(rows: list[sqlite3.Row], limit: int, secret: bytes, fingerprint: str, keys: tuple[str, ...]) -> tuple[list[sqlite3.Row], str | None]:
    """The first `limit` of `limit + 1` rows and, when there was one more, the cursor after the last."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], sign_cursor(secret, fingerprint, [rows[limit - 1][k] for k in keys])


def employee_rows(db: sqlite3.Connection, secret: bytes, where: EmployeeFilter, limit: int,
                  cursor: str | None) -> tuple[list[sqlite3.Row], str | None]:
    """Up to `limit` employees matching `where` (query: name, work email or title, literally; or the
    exact employee number) after the cursor's position, and the next page's cursor."""
    fingerprint = query_fingerprint("employees", where.model_dump(mode="json"))
    after = open_cursor(secret, cursor, fingerprint, width=1)
    clauses, params = ["rowid > ?"], [after[0] if after else 0]
    if where.query:
        clauses.append("(first_name || ' ' || last_name LIKE ? ESCAPE '\\' OR work_email LIKE ? ESCAPE '\\' "
                       "OR title LIKE ? ESCAPE '\\' OR employee_number = ?)")
        params += [like_pattern(where.query)] * 3 + [where.query]
    for column, value in (("department", where.department), ("location", where.location),
                          ("manager_id", where.manager_id), ("employment_status", where.status),
                          ("employment_type", where.employment_type)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    rows = db.execute(f"SELECT rowid AS position, * FROM employees WHERE {' AND '.join(clauses)} ORDER BY rowid LIMIT ?",
                      [*params, limit + 1]).fetchall()
    return _page(rows, limit, secret, fingerprint, ("position",))


def request_rows(db: sqlite3.Connection, secret: bytes, employee_id: str | None, start: date | None, end: date | None,
                 status: RequestStatus | None, limit: int, cursor: str | None) -> tuple[list[sqlite3.Row], str | None]:
    """Up to `limit` time-off requests (of `employee_id`, overlapping [start, end], in `status`) by
    (start, id) after the cursor's position, and the next page's cursor."""
    filters = {"employee_id": employee_id or None, "start": start.isoformat() if start else None,
               "end": end.isoformat() if end else None, "status": status}
    fingerprint = query_fingerprint("time_off_requests", filters)
    after = open_cursor(secret, cursor, fingerprint, width=2)
    clauses, params = ["1=1"], []
    for clause, value in (("employee_id = ?", filters["employee_id"]), ('"end" >= ?', filters["start"]),
                          ("start <= ?", filters["end"]), ("status = ?", status)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if after is not None:
        clauses.append("(start, id) > (?, ?)")
        params += after
    rows = db.execute(f"SELECT * FROM requests WHERE {' AND '.join(clauses)} ORDER BY start, id LIMIT ?",
                      [*params, limit + 1]).fetchall()
    return _page(rows, limit, secret, fingerprint, ("start", "id"))


