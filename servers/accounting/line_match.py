"""Which stored line each line of a lines patch stands for (outside review r38b #5).

A lines patch sends every line as the tools show it, and a provider keeps more on a line than the tools show
(Xero: its LineItemID, Tracking, discount; QuickBooks: its Id, class, billable customer). The providers send
each new line with what its stored line holds beyond what the tools show (`xero_mapping.patch_lines`,
`qbo_mapping.patch_lines`), so re-sending a line unchanged, or changing its quantity, price or description,
never drops it; where a patch cannot tell which line a new one replaces, it is refused (`refuse_unclear`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from servers.accounting.model import InvoiceLine, LineInput
from servers.kit.errors import DomainError

CODES = ("account_code", "tax_code", "item")


@dataclass(frozen=True)
class Match:
    """The stored line (`index` into the stored lines) a new line stands for, or None for a new line;
    `unchanged`: it shows exactly as the stored one (account, tax code and item where it names them)."""

    index: int | None
    unchanged: bool = False


def _codes_agree(have: InvoiceLine, want: LineInput) -> bool:
    """Account, tax code and item are the stored ones where `want` names them (left out: not a change)."""
    return all(getattr(want, f) is None or getattr(want, f) == getattr(have, f) for f in CODES)


WEIGHTS = {"description": 5, "quantity": 2, "unit_price": 2, **dict.fromkeys(CODES, 2)}
"""What a changed field costs a reading of the patch. A description names its line more than a quantity and a price
together do (review r40 #3: reordered lines with corrected hours took each other's line by their new quantities)."""
NEW_LINE = 8
"""What a sent line read as new costs (and the stored line it might have been, removed: nothing). A line edited in place
that changes its description and its price (7) is still that line; one that changes as much as this is a new line,
so a patch that removes one line and adds another is not read as the removed line edited into the added one."""
EXACT_LIMIT = 120
"""Lines in one tangle (lines that could stand for each other) up to which the best reading is searched exactly."""


def _changed(have: InvoiceLine, want: LineInput) -> int:
    """The weighted count of fields `want` changes on `have` (a code it leaves out is not a change)."""
    cost = sum(WEIGHTS[f] for f in ("description", "quantity", "unit_price") if getattr(want, f) != getattr(have, f))
    return cost + sum(WEIGHTS[f] for f in CODES if getattr(want, f) is not None and getattr(want, f) != getattr(have, f))


def match_lines(stored: Sequence[InvoiceLine], wanted: Sequence[LineInput]) -> list[Match]:
    """For each of `wanted`, the stored line it stands for (each stored line used once), or a new line.

    A sent line may stand for a stored line with the same description and codes (its quantity or price changed),
    with the same quantity, unit price and codes (its description changed), or, when as many lines are sent as are
    stored, for the one at its own position (a line edited in place). Of every way to read the patch so, the one
    taken changes the fewest fields (`WEIGHTS`; a line read as new counts `NEW_LINE`), then moves lines the least:
    each of two lines that look the same keeps its own (review r39b #1, #4), and two lines reordered with one field
    changed on each keep theirs where reading them in place changes more (review r41 #4). Lines sent back exactly at
    their own position are taken first; the rest is searched exactly (an assignment per tangle of lines that could
    stand for each other, up to `EXACT_LIMIT` lines; beyond it, cheapest pairs first). Stored lines no sent line
    stands for are the ones the patch removes (`refuse_unclear` guards what they hold)."""
    same_count = len(stored) == len(wanted)
    found: dict[int, int] = {n: n for n in range(min(len(stored), len(wanted))) if _changed(stored[n], wanted[n]) == 0}

    def may(i: int, n: int) -> bool:
        have, want = stored[i], wanted[n]
        if _changed(have, want) >= NEW_LINE:  # as much a new line as that one (see NEW_LINE)
            return False
        if not _codes_agree(have, want):
            return same_count and i == n
        return have.description == want.description or (have.quantity, have.unit_price) == (want.quantity, want.unit_price) \
            or (same_count and i == n)

    taken = set(found.values())
    free_stored = [i for i in range(len(stored)) if i not in taken]
    free_wanted = [n for n in range(len(wanted)) if n not in found]
    edges = {n: [i for i in free_stored if may(i, n)] for n in free_wanted}
    for rows, cols in _tangles(edges):
        scale = len(stored) + len(wanted) + 1  # a change outweighs any total of moves
        cost = {(n, i): _changed(stored[i], wanted[n]) * scale * scale + abs(i - n) for n in rows for i in edges[n] if i in cols}
        found.update(_best(rows, cols, cost, new_line=NEW_LINE * scale * scale) if len(rows) + len(cols) <= EXACT_LIMIT
                     else _cheapest_first(cost))
    return [Match(found[n], _changed(stored[found[n]], wanted[n]) == 0) if n in found else Match(None) for n in range(len(wanted))]


def _tangles(edges: dict[int, list[int]]) -> list[tuple[list[int], set[int]]]:
    """The sent lines and stored lines that could stand for each other, split where no pair links them."""
    out: list[tuple[list[int], set[int]]] = []
    seen: set[int] = set()
    standing_for: dict[int, list[int]] = {}
    for n, stored in edges.items():
        for i in stored:
            standing_for.setdefault(i, []).append(n)
    for start in edges:
        if start in seen or not edges[start]:
            continue
        rows, cols, todo = [], set(), [start]
        seen.add(start)
        while todo:
            n = todo.pop()
            rows.append(n)
            for i in edges[n]:
                if i not in cols:
                    cols.add(i)
                    for m in standing_for[i]:
                        if m not in seen:
                            seen.add(m)
                            todo.append(m)
        out.append((sorted(rows), cols))
    return out


def _best(rows: list[int], cols: set[int], cost: dict[tuple[int, int], int], new_line: int) -> dict[int, int]:
    """The cheapest assignment of `rows` (sent lines) to `cols` (stored lines), a sent line left new costing `new_line`:
    the Hungarian method over rows + dummy rows by cols + dummy cols."""
    stored_cols = sorted(cols)
    size = len(rows) + len(stored_cols)
    never = new_line * (size + 1)

    def price(r: int, c: int) -> int:
        if r < len(rows):
            return cost.get((rows[r], stored_cols[c]), never) if c < len(stored_cols) else new_line
        return 0  # a dummy row takes a stored line (removed) or a dummy column: free

    u, v, owner, way = [0] * (size + 1), [0] * (size + 1), [0] * (size + 1), [0] * (size + 1)
    for r in range(1, size + 1):
        owner[0], col = r, 0
        least, used = [never * 4] * (size + 1), [False] * (size + 1)
        while owner[col]:
            used[col] = True
            row, delta, nxt = owner[col], never * 4, 0
            for c in range(1, size + 1):
                if not used[c]:
                    here = price(row - 1, c - 1) - u[row] - v[c]
                    if here < least[c]:
                        least[c], way[c] = here, col
                    if least[c] < delta:
                        delta, nxt = least[c], c
            for c in range(size + 1):
                if used[c]:
                    u[owner[c]] += delta
                    v[c] -= delta
                else:
                    least[c] -= delta
            col = nxt
        while col:
            prev = way[col]
            owner[col] = owner[prev]
            col = prev
    return {rows[owner[c] - 1]: stored_cols[c - 1] for c in range(1, len(stored_cols) + 1)
            if owner[c] - 1 < len(rows) and (rows[owner[c] - 1], stored_cols[c - 1]) in cost}


def _cheapest_first(cost: dict[tuple[int, int], int]) -> dict[int, int]:
    """A large tangle: pairs taken cheapest first, each line once (not always the best reading; see `EXACT_LIMIT`)."""
    found: dict[int, int] = {}
    used: set[int] = set()
    for (n, i), _ in sorted(cost.items(), key=lambda item: (item[1], item[0])):
        if n not in found and i not in used:
            found[n] = i
            used.add(i)
    return found


def refuse_unclear(stored: Sequence[InvoiceLine], wanted: Sequence[LineInput], matches: Sequence[Match],
                   holds: Sequence[str], provider: str) -> None:
    """`invalid_argument` when a stored line holding what the tools do not show (`holds[i]`, e.g. "tracking";
    "" for nothing) is left unmatched while a sent line is new: the patch cannot tell a removed line and an
    added one from one line whose description and price both changed, and guessing would move or drop that
    data. Nothing is sent; the advice splits the change into patches that can be told apart."""
    matched = {m.index for m in matches}
    lost = [i for i, what in enumerate(holds) if what and i not in matched]
    new = [n for n, m in enumerate(matches) if m.index is None]
    if not (lost and new):
        return
    i, n = lost[0], new[0]
    raise DomainError("invalid_argument", f"lines[{n}] ({wanted[n].description!r}) matches no stored line, and stored line "
                      f"{i + 1} ({stored[i].description!r}), which holds {holds[i]} in {provider} that the tools do not show, "
                      "is not sent back: it is unclear whether the new line replaces it, so nothing was sent. To change "
                      "that line, keep its description or its quantity and price in this patch and change the other "
                      "in a second one; to replace it, remove it in one patch and add the new line in another",
                      details={"field": f"lines[{n}]", "stored_line": i + 1})
