"""What an embedded ticket write actually changes, and the optimistic-concurrency check every
ticket write shares (outside review 8: defect 5 and the `transition_ticket` design gap).

The version check is made in the write itself (`versioned_update`, outside review domains27 #3): the
`UPDATE` holds `version = expected` in its `WHERE`, so of two writers holding one version exactly one
applies and the other gets `conflict`, whatever connection or process each runs in (the store's
`BEGIN IMMEDIATE` transaction already serialized them; the statement no longer depends on it).

An update whose values equal the stored ones changes nothing: the ticket keeps its version and
`updated_at`, no change event is emitted, and the answer says so (`changed: []`), so another
caller's edit made with the version it just read still applies. Only the fields whose stored
value differs are written. Such an update, and a transition to the status the ticket has, is answered
with the ticket as it is whatever `expected_version` says: a retry of a write that landed (its answer
lost) holds what it asked, and its own change is no `conflict` (outside review r38b #2); the version is
checked only when something would still change. Every provider connector follows the same order.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from servers.kit.errors import DomainError, not_found


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


def versioned_update(db: sqlite3.Connection, key: str, sets: str, params: list[Any], expected_version: str | None) -> None:
    """`UPDATE tickets SET <sets>, version = version + 1` on ticket `key`, only while its version is still
    `expected_version` when one is given (check and write in one statement); otherwise `conflict` naming the
    current version, or `not_found` if the ticket is gone."""
    sql, args = f"UPDATE tickets SET {sets}, version = version + 1 WHERE key = ?", [*params, key]
    if expected_version is not None:
        sql += " AND CAST(version AS TEXT) = ?"
        args.append(expected_version)
    if db.execute(sql, args).rowcount == 1:
        return
    row = db.execute("SELECT key, version FROM tickets WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise not_found("ticket", key)
    check_version(row, expected_version)
    raise DomainError("internal", f"{key} was not updated and the reason is unknown; get it again and retry")
