"""What an embedded ticket write actually changes, and the optimistic-concurrency check every
ticket write shares (outside review 8: defect 5 and the `transition_ticket` design gap).

An update whose values equal the stored ones changes nothing: the ticket keeps its version and
`updated_at`, no change event is emitted, and the answer says so (`changed: []`), so another
caller's edit made with the version it just read still applies. Only the fields whose stored
value differs are written.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from servers.kit.errors import DomainError


def check_version(row: sqlite3.Row, expected_version: str | None) -> None:
    """`conflict` with the current version when `expected_version` is given and is not the stored one."""
    if expected_version is not None and str(row["version"]) != expected_version:
        raise DomainError(
            "conflict",
            f"{row['key']} changed since you read it (version {row['version']}, you had {expected_version}); "
            "get it again and reapply your change",
            details={"current_version": str(row["version"])},
        )


def effective_changes(row: sqlite3.Row, changes: dict[str, Any]) -> dict[str, Any]:
    """The columns of `changes` (values as stored: labels as JSON, assignee as a user id) whose value
    differs from `row`'s; empty when the update would change nothing."""
    out: dict[str, Any] = {}
    for column, value in changes.items():
        current = row[column]
        if column == "labels":
            same = json.loads(current or "[]") == json.loads(value)
        else:
            same = current == value or (column == "description" and (current or "") == (value or ""))
        if not same:
            out[column] = value
    return out
