"""ServiceNow lists walked by a stable key (outside review domains27 #1).

Paging by `sysparm_offset` over a list ordered by `sys_updated_on` shifted under the walk: an incident
created, updated or deleted between two pages moved every later row one place, so a walk repeated one
incident and silently dropped another. Each list is now ordered by a key that never changes and is
unique (`sys_created_on`, then `sys_id`), and the next page asks for the rows strictly after the last
row shown. ServiceNow's encoded queries have no tuple comparison, so "after (T, X)" is written as two
queries joined by `^NQ` (OR of AND-groups): `created beyond T` or `created at T and sys_id beyond X`;
a filter holding `^NQ` groups of its own gets the condition in each group. A caller's own `ORDERBY`
in a native query is replaced by this order (another order cannot be walked without gaps).

Read ACLs drop rows after ServiceNow cut the page (KB3047115), so a page may come back short or empty.
A short page continues after its last readable row; an empty one cannot name a row, so the cursor
keeps the key and counts the hidden rows to step over (`skip`, an offset inside the keyed query, which
only ever covers rows this user cannot read). `total` is the query's `X-Total-Count` when the walk
began (hidden rows included); with keyset paging a walk is not limited to ServiceNow's 10,000-row
offset window.

A cursor comes back from the caller, who may have crafted it, and its key is written into the encoded
query (outside review evtick27 #3: an `after` holding `^NQ…` added its own OR-group and read other
incidents' work notes). Decision: the cursor is checked, not signed (this connector keeps no secret):
`after` must be exactly a ServiceNow date-time (`YYYY-MM-DD HH:MM:SS`) and a sys_id (32 letters or digits), `skip`
and `total` counts, else the call is `invalid_argument`; no other cursor value reaches the query, so a
crafted cursor can only choose a position inside the caller's own query, never widen it.
"""

from __future__ import annotations

import re
from typing import Any

from servers.kit.cursor import CursorState, decode_cursor, encode_cursor
from servers.kit.errors import DomainError
from servers.kit.http import ProviderHTTP

Order = tuple[tuple[str, bool], tuple[str, bool]]
"""(field, descending) twice: the sort key and its unique tie-break."""
NEWEST_FIRST: Order = (("sys_created_on", True), ("sys_id", True))
OLDEST_FIRST: Order = (("sys_created_on", False), ("sys_id", False))
ACL_HOPS = 4
"""Pages one call reads past when read ACLs emptied them (each is one request), before answering empty."""
QUERY_CAP = 10_000


_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_SYS_ID = re.compile(r"[0-9A-Za-z]{32}")  # sys_ids are 32 hex digits; any 32 letters or digits hold no operator
_NOT_OURS = "cursor is not one this server issued: pass next_cursor from the previous page unchanged"


def cursor_position(state: CursorState) -> tuple[list[str] | None, int, int | None]:
    """A cursor's (after, skip, total), checked before any of it reaches a query (module docstring)."""
    after, total = state.get("after"), state.get("total")
    skip = state.get("skip", state.get("offset", 0))  # an offset cursor made before keyset paging: once
    if after is not None and not (isinstance(after, list) and len(after) == 2 and all(isinstance(v, str) for v in after)
                                  and _TIME.fullmatch(after[0]) and _SYS_ID.fullmatch(after[1])):
        raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"})
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or not 0 <= total < 2**53):
        raise DomainError("invalid_argument", _NOT_OURS, details={"field": "cursor"})
    return after, skip, total


def order_clause(order: Order) -> str:
    return "^".join(f"ORDERBY{'DESC' if desc else ''}{name}" for name, desc in order)


def without_order(query: str) -> str:
    """`query` without its `ORDERBY…` clauses (the walk's own order replaces them)."""
    return "^".join(c for c in query.split("^") if c and not c.startswith("ORDERBY"))


def keyed_query(query: str, order: Order, after: list[str] | None) -> str:
    """`query` ordered by `order`, holding only rows strictly after the key `after` (none: from the start)."""
    base = without_order(query)
    if not after:
        return f"{base}^{order_clause(order)}" if base else order_clause(order)
    (first, first_desc), (second, second_desc) = order
    beyond = "<" if first_desc else ">"
    up_to = "<=" if second_desc else ">="  # strings compare with <=/>= (and != for strictly)
    conditions = [f"{first}{beyond}{after[0]}", f"{first}={after[0]}^{second}{up_to}{after[1]}^{second}!={after[1]}"]
    groups = base.split("^NQ") if base else [""]
    return "^NQ".join(f"{g}^{c}" if g else c for g in groups for c in conditions) + "^" + order_clause(order)


async def keyset_window(http: ProviderHTTP, path: str, params: dict[str, Any], query: str, order: Order, limit: int,
                        cursor: str | None) -> tuple[list[dict[str, Any]], int, str | None]:
    """One page of `path` for encoded `query` walked by `order`: its readable rows, the walk's total
    (`X-Total-Count` when it began) and the next cursor (None at the end)."""
    after, skip, total = cursor_position(decode_cursor(cursor))
    sent = keyed_query(query, order, after)
    rows: list[dict[str, Any]] = []
    more = False
    for _ in range(ACL_HOPS):
        response = await http.request("GET", path, params={**params, "sysparm_query": sent, "sysparm_limit": limit,
                                                           "sysparm_offset": skip})
        rows = response.json().get("result", [])
        count = int(response.headers.get("x-total-count", skip + len(rows)))
        total = count if total is None else total
        if rows:
            more = skip + limit < count
            key = [str(rows[-1].get(name, "")) for name, _ in order]
            if not (_TIME.fullmatch(key[0]) and _SYS_ID.fullmatch(key[1])):
                raise DomainError("upstream_error", f"ServiceNow answered a row without a {order[0][0]} date-time and "
                                  "sys_id, which paging needs; check the integration user may read both fields")
            after, skip = key, 0
            break
        skip += limit  # every row of this window is hidden from this user: step over them
        more = skip < min(count, QUERY_CAP)
        if not more:
            break
    next_cursor = encode_cursor({"after": after, "skip": skip, "total": total}) if more else None
    return rows, int(total or 0), next_cursor
