"""An issue's comments walked by a key that never changes (`servers.ticketing.providers.github`).

GitHub pages an issue's comments by page number (the `Link` header), so a comment deleted between two pages
moved every later one a place forward and the walk dropped one; one added meanwhile could repeat (fixer
ticketing28 #2, the sibling of Jira's `startAt`). GitHub lists comments by ascending id and takes `since`
(comments *updated* at or after an instant). Each page is now read as its own listing, `since` the created
time of the last comment shown, keeping only ids above it: every comment created later was updated later
too, so none is missed, and older ones edited since are dropped by id. A page that holds only such edited
comments continues in that same listing (`page`), so a walk always moves on. The cursor is checked, never
trusted: an id, a GitHub instant and a page number (else invalid_argument).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from servers.kit.cursor import decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP
from servers.ticketing.model import Comment, CommentPage
from servers.ticketing.providers.github_search import instant
from servers.ticketing.providers.github_walk import NEXT

PAGES = 5
"""GitHub pages (of 100) one call reads at most."""
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_NOT_OURS = "cursor is not one this server issued: pass next_cursor from the previous page unchanged"


def _position(cursor: str | None) -> tuple[int, str | None, int]:
    """A cursor's (after id, since instant, page), checked."""
    state = decode_cursor(cursor)
    if "next" in state:
        raise DomainError("invalid_argument", "this cursor is from an older page-numbered GitHub comment listing, which "
                          "could repeat or skip comments; list the comments again without a cursor", details={"field": "cursor"})
    after, since, page = state.get("after", 0), state.get("since"), state.get("page", 1)
    if since is not None and not (isinstance(since, str) and _INSTANT.fullmatch(since)) or not 1 <= page <= 1000:
        raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"})
    return after, since, page


async def comments_page(http: ProviderHTTP, path: str, limit: int, cursor: str | None,
                        to_comment: Callable[[dict[str, Any]], Comment]) -> CommentPage:
    """One page of the comments at `path` (`/repos/o/r/issues/n/comments`), oldest first, after the cursor's."""
    after, since, page = _position(cursor)
    fresh: list[dict[str, Any]] = []
    more = False
    for _ in range(PAGES):
        params: dict[str, Any] = {"per_page": 100, "page": page, **({"since": since} if since else {})}
        response = await http.request("GET", path, params=params)
        rows = [r for r in response.json() if int(r["id"]) > after and all(int(r["id"]) != int(f["id"]) for f in fresh)]
        fresh += sorted(rows, key=lambda r: int(r["id"]))
        more = bool(NEXT.search(response.headers.get("link", "")))
        if len(fresh) > limit or not more:
            break
        page += 1
    shown = fresh[:limit]
    if len(fresh) <= limit and not more:
        return CommentPage(comments=[to_comment(c) for c in shown], next_cursor=None)
    if shown:  # the next page is a new listing since the last comment shown
        last = shown[-1]
        created = datetime.fromisoformat(str(last["created_at"]).replace("Z", "+00:00"))
        state = {"after": int(last["id"]), "since": instant(created)}
    else:  # only older comments edited since: on in this listing
        state = {"after": after, **({"since": since} if since else {}), "page": page + 1}
    return CommentPage(comments=[to_comment(c) for c in shown], next_cursor=encode_cursor(state))
