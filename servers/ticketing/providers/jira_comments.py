"""An issue's comments walked without repeats or gaps (`servers.ticketing.providers.jira`).

Jira pages comments only by offset (`startAt`). A comment deleted before the offset between two pages moved
every later one a place back, so the walk dropped one; one added (or a page re-read) could repeat (fixer
ticketing28 #2). Jira has no keyset filter for comments, so the walk checks its place instead: comments are
read oldest first (`orderBy=created`: the created time never changes; the numeric id breaks ties), and the
cursor keeps the offset after the last comment shown *and* that comment's key. The next call reads from one
before the offset; while the first row it gets is already past the key (comments before it were deleted), it
steps back (further each time, to 0 at worst) and reads on from there. Only comments past the key are shown,
each id once. A cursor's key is checked, never trusted (else invalid_argument); an older cursor with only an
offset still pages as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from typing import Any

from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
from servers.ticketing.model import Comment, CommentPage
from servers.ticketing.providers.jira_query import jira_time

STEPS = 6
"""Reads one call makes at most while finding its place and filling the page."""
Key = tuple[str, int]
_KEY_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00")
_NOT_OURS = "cursor is not one this server issued: pass next_cursor from the previous page unchanged"


def comment_key(raw: dict[str, Any]) -> Key:
    """A comment's place oldest first: its created instant in UTC (to the microsecond), then its numeric id."""
    created = jira_time(str(raw.get("created") or "1970-01-01T00:00:00.000+0000")).astimezone(UTC)
    ident = str(raw.get("id", ""))
    return created.isoformat(timespec="microseconds"), int(ident) if ident.isdigit() else 0


def _position(cursor: str | None) -> tuple[int, Key | None]:
    state = decode_cursor(cursor)
    start, after = state.get("start_at", 0), state.get("after")
    if after is not None and not (isinstance(after, list) and len(after) == 2 and isinstance(after[0], str)
                                  and _KEY_TIME.fullmatch(after[0]) and isinstance(after[1], int)
                                  and not isinstance(after[1], bool) and 0 <= after[1] < 2**63):
        raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"})
    return start, (after[0], after[1]) if after is not None else None


async def comments_page(http: ProviderHTTP, ticket_id: str, limit: int, cursor: str | None,
                        to_comment: Callable[[dict[str, Any]], Comment]) -> CommentPage:
    """One page of `ticket_id`'s comments, oldest first, after the cursor's last comment."""
    start, after = _position(cursor)
    size = limit + 1 if after else limit  # one more: the boundary comment is read again

    async def read(offset: int) -> tuple[list[dict[str, Any]], int]:
        body = await http.json("GET", f"/issue/{ticket_id}/comment",
                               params={"startAt": offset, "maxResults": size, "orderBy": "created"})
        rows = list(body.get("comments", []))
        return rows, int(body.get("total", offset + len(rows)))

    offset = max(start - 1, 0) if after else start
    steps = 0
    rows, total = await read(offset)
    while after and offset > 0 and not (rows and comment_key(rows[0]) <= after) and steps < STEPS:
        steps += 1  # comments before the place were deleted: step back, further each time
        offset = 0 if steps >= STEPS - 1 else max(offset - size * 2 ** steps, 0)
        rows, total = await read(offset)
    fresh: list[tuple[int, dict[str, Any]]] = []  # (offset after it, the comment)
    ids: set[str] = set()

    def take(rows: list[dict[str, Any]], at: int) -> None:
        for n, row in enumerate(rows):
            if (after is None or comment_key(row) > after) and str(row.get("id")) not in ids:
                ids.add(str(row.get("id")))
                fresh.append((at + n + 1, row))

    take(rows, offset)
    while len(fresh) <= limit and rows and offset + len(rows) < total and steps < 2 * STEPS:
        steps += 1
        offset += len(rows)
        rows, total = await read(offset)
        take(rows, offset)
    shown = fresh[:limit]
    more = len(fresh) > limit or (bool(rows) and offset + len(rows) < total)
    if not more:
        return CommentPage(comments=[to_comment(c) for _, c in shown], next_cursor=None)
    if shown:
        state: dict[str, Any] = {"start_at": shown[-1][0], "after": list(comment_key(shown[-1][1]))}
    else:  # every row read was at or before the place: on from the last one read
        state = {"start_at": offset + len(rows), **({"after": list(after)} if after else {})}
    return CommentPage(comments=[to_comment(c) for _, c in shown], next_cursor=encode_cursor(state))
