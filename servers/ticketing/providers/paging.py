"""Page-numbered provider searches (GitHub `/search/issues`, Zendesk `/search.json`) walked by offset.

A cursor that held a page number was read with the next call's `limit` as the page size, so a walk that
changed `limit` between pages skipped rows (outside review domains26 #10: page 2 at 5 a page starts at
the 6th match, after a first page of 2). The cursor holds the offset of the next row instead, and each
page asks for a page size that divides that offset (`page_at`): never a skipped row, at worst a page
shorter than `limit`.
"""

from __future__ import annotations


def page_at(offset: int, limit: int, cap: int = 100) -> tuple[int, int]:
    """(page number, per_page) whose page starts exactly at row `offset` with at most `limit` rows."""
    most = max(1, min(limit, cap))
    if offset <= 0:
        return 1, most
    per_page = next(size for size in range(most, 0, -1) if offset % size == 0)
    return offset // per_page + 1, per_page


def offset_of(state: dict[str, object], legacy_per_page: int) -> int:
    """The next row's offset from a cursor: `offset`, or a cursor made before this by page number."""
    if "offset" in state:
        return max(0, int(state["offset"]))  # type: ignore[call-overload]
    return (max(1, int(state.get("page", 1))) - 1) * legacy_per_page  # type: ignore[call-overload]
