"""How the GitHub connector walks an issue list by page number without skipping (`servers.ticketing.providers.github`)."""

from __future__ import annotations

import re
from typing import Any

from servers.kit.cursor import encode_cursor
from servers.kit.http import ProviderHTTP

WALK_STEPS = 5
"""Pages a list walk steps back (or on) at most in one call."""
NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


async def list_page(http: ProviderHTTP, path: str, params: dict[str, Any], limit: int, state: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """One page of an issue list newest created first, kept by the last issue number shown (`before`).

    GitHub pages by page number over a list that changes under a walk: closing the issues shown (a walk of
    open issues) moves every later one a place forward, and the next page number then starts past issues
    never shown (outside review domains26 #7). The cursor keeps the page it stopped on and the last number
    shown; the next call steps back a page while the page it reads starts below that number (rows moved
    forward past its start), then keeps only the numbers below it: nothing is skipped or shown twice. The
    page size is the cursor's (`per_page`), so a changed `limit` only trims what is answered."""
    per_page = min(state.get("per_page", 0) or min(limit, 100), 100)  # typed gets: a crafted cursor is invalid_argument
    page, before = max(state.get("page", 1), 1), (state.get("before", 0) if "before" in state else None)
    rows: list[dict[str, Any]] = []
    for step in range(WALK_STEPS):
        rows, more = await _issues_page(http, path, params, page, per_page)
        if before is None or page == 1 or (rows and int(rows[0]["number"]) >= int(before)) or step == WALK_STEPS - 1:
            break
        page -= 1
    fresh: list[tuple[int, dict[str, Any]]] = []  # (the page it was read on, the row)

    def take(rows: list[dict[str, Any]]) -> None:
        floor = int(fresh[-1][1]["number"]) if fresh else (int(before) if before is not None else None)
        fresh.extend((page, r) for r in rows if floor is None or int(r["number"]) < floor)

    take(rows)
    for _ in range(WALK_STEPS):
        if len(fresh) >= limit or not more:
            break
        page += 1
        rows, more = await _issues_page(http, path, params, page, per_page)
        take(rows)
    shown = fresh[:limit]
    if not shown or (len(fresh) <= limit and not more):
        return [r for _, r in shown], None
    return [r for _, r in shown], encode_cursor({"before": int(shown[-1][1]["number"]), "page": shown[-1][0],
                                                 "per_page": per_page})


async def _issues_page(http: ProviderHTTP, path: str, params: dict[str, Any], page: int, per_page: int) -> tuple[list[dict[str, Any]], bool]:
    response = await http.request("GET", path, params={**params, "per_page": per_page, "page": page})
    return response.json(), bool(NEXT.search(response.headers.get("link", "")))
