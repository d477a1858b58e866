"""Which stored line each line of a lines patch stands for (outside review r38b #5).

A lines patch sends every line as the tools show it, and a provider keeps more on a line than the tools show
(Xero: its LineItemID, Tracking, discount; QuickBooks: its Id, class, billable customer). The providers send
each new line with what its stored line holds beyond what the tools show (`xero_mapping.patch_lines`,
`qbo_mapping.patch_lines`), so re-sending a line unchanged, or changing its quantity, price or description,
never drops it; where a patch cannot tell which line a new one replaces, it is refused (`refuse_unclear`).
"""

from __future__ import annotations

import bisect
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


WEIGHTS = {"description": 10, "quantity": 4, "unit_price": 4, **dict.fromkeys(CODES, 2)}
"""What a changed field costs a reading of the patch. A description names its line more than a quantity and a price
together do (review r40 #3: reordered lines with corrected hours took each other's line by their new quantities)."""
NEW_LINE = 17
"""What a sent line read as new costs (the stored line it might have been, removed: nothing). A line that keeps its
description is always that line (at most 14); one that changes its description and its quantity or price (and a code)
is still that line; one that changes description, quantity and price (18) is a new line, so a patch that removes one
line and adds another is not read as the removed line edited into the added one (a line holding data the tools do not
show is then refused: `refuse_unclear`)."""
EXACT_LIMIT = 160
"""Lines in one tangle (lines that could stand for each other) up to which every reading is searched (about 0.3 s at
the limit); a larger tangle is read keeping its lines in order (review lines53c H1: cheapest pairs first moved a
100-day timesheet's tracking along by one behind an inserted line)."""
EXACT_BUDGET = 2 * EXACT_LIMIT ** 3
"""What the searches of one patch may cost together (the search is cubic in a tangle's lines): once spent, the other
tangles are read in order (review lines53c H3: 25 tangles of 80 lines took 9-12 s)."""
ALIGN_LIMIT = 300_000
"""Sent x stored lines of a tangle up to which it is read in order (an alignment, quadratic); beyond, cheapest pairs
first."""


def _changed(have: InvoiceLine, want: LineInput) -> int:
    """The weighted count of fields `want` changes on `have` (a code it leaves out is not a change)."""
    cost = sum(WEIGHTS[f] for f in ("description", "quantity", "unit_price") if getattr(want, f) != getattr(have, f))
    return cost + sum(WEIGHTS[f] for f in CODES if getattr(want, f) is not None and getattr(want, f) != getattr(have, f))


NEAREST = EXACT_LIMIT
"""Of more stored lines alike (same description, or same quantity and price) than this, a sent line weighs only the
`NEAREST` nearest its own position: a thousand look-alike lines are not weighed pair by pair. As large as an exactly
searched tangle, so only a tangle read cheapest pairs first is ever windowed (review lines53b G2: a 48-line window
lost a line's own stored line behind 25 lines inserted above it)."""


def _candidates(stored: Sequence[InvoiceLine], wanted: Sequence[LineInput]) -> dict[int, dict[int, int]]:
    """For each sent line, the stored lines it may stand for, with what reading it so changes: one with the
    same description, or the same quantity and unit price (codes may change), or, when as many lines are sent as are
    stored, the one at its own position — each changing less than `NEW_LINE`. Found through indexes, not by weighing
    every pair (a 1,000-line invoice)."""
    by_text: dict[str, list[int]] = {}
    by_amount: dict[tuple[object, object], list[int]] = {}
    for i in range(len(stored)):  # in position order
        by_text.setdefault(stored[i].description, []).append(i)
        by_amount.setdefault((stored[i].quantity, stored[i].unit_price), []).append(i)
    in_place = len(stored) == len(wanted)
    out: dict[int, dict[int, int]] = {}
    for n, want in enumerate(wanted):
        near = {*_nearest(by_text.get(want.description, []), n), *_nearest(by_amount.get((want.quantity, want.unit_price), []), n)}
        if in_place:
            near.add(n)
        costs = {i: _changed(stored[i], want) for i in near}
        out[n] = {i: cost for i, cost in costs.items() if cost < NEW_LINE}
    return out


def _nearest(places: list[int], n: int) -> list[int]:
    """`places` (ascending) if few, else the `NEAREST` of them closest to position `n`."""
    if len(places) <= NEAREST:
        return places
    at = bisect.bisect_left(places, n)
    low = max(0, min(at - NEAREST // 2, len(places) - NEAREST))
    return places[low:low + NEAREST]


def match_lines(stored: Sequence[InvoiceLine], wanted: Sequence[LineInput]) -> list[Match]:
    """For each of `wanted`, the stored line it stands for (each stored line used once), or a new line.

    A sent line may stand for a stored line with the same description or the same quantity and unit price (its
    codes may change too), or, when as many lines are sent as are stored, for the one at its own position (a line
    edited in place) — never one it would change by `NEW_LINE` or more. Of every way to read the patch so, the one
    taken changes the fewest fields (`WEIGHTS`; a line read as new counts `NEW_LINE`); of those, one that keeps the
    lines in their order if there is one (`_in_order`: an inserted or removed line shifts look-alike lines, and a
    reading that reorders them is as cheap — reviews lines53 F1-F3, lines53b G1), else the one that moves lines
    least (squared: an uncrossed pair moves less than a crossed one). So each of two lines that look the same keeps
    its own (review r39b #1, #4), and two lines reordered with one field changed on each keep theirs where reading
    them in place changes more (review r41 #4). Searched exactly per tangle of lines that could stand for each other
    (an assignment, up to `EXACT_LIMIT` lines and `EXACT_BUDGET` in all); a larger tangle is read in order. Stored lines no sent
    line stands for are the ones the patch removes (`refuse_unclear` guards what they hold)."""
    found: dict[int, int] = {}
    edges = _candidates(stored, wanted)
    unit = (len(stored) + len(wanted) + 1) ** 3  # one changed field outweighs any total of squared moves
    budget = EXACT_BUDGET
    for rows, cols in _tangles(edges):
        cost = {(n, i): changed * unit + (i - n) ** 2 for n in rows for i, changed in edges[n].items()}
        size = len(rows) + len(cols)
        if size > EXACT_LIMIT or size ** 3 > budget:  # too large to search every reading: the lines in their order
            found.update(_in_order(rows, sorted(cols), cost, NEW_LINE * unit) if len(rows) * len(cols) <= ALIGN_LIMIT
                         else _cheapest_first(cost))
            continue
        budget -= size ** 3
        best = _best(rows, cols, cost, new_line=NEW_LINE * unit)
        in_order = _in_order(rows, sorted(cols), cost, NEW_LINE * unit)

        def changes(reading: dict[int, int], rows: list[int] = rows) -> int:
            return sum(cost[n, i] // unit for n, i in reading.items()) + NEW_LINE * (len(rows) - len(reading))

        found.update(in_order if changes(in_order) <= changes(best) else best)
    return [Match(found[n], _changed(stored[found[n]], wanted[n]) == 0) if n in found else Match(None) for n in range(len(wanted))]


def _in_order(rows: list[int], cols: list[int], cost: dict[tuple[int, int], int], new_line: int) -> dict[int, int]:
    """The cheapest reading that keeps the lines in their order (an alignment: a sent line stands for a stored one,
    is new, or a stored line is removed), as in `_best`. Taken where it changes no more than the cheapest reading of
    all: an inserted or removed line shifts look-alike lines, which a reading that reorders them matches as cheaply
    (review lines53 F1-F3, lines53b G1: their tracking swapped)."""
    inf = float("inf")
    table = [[inf] * (len(cols) + 1) for _ in range(len(rows) + 1)]
    step: list[list[int]] = [[0] * (len(cols) + 1) for _ in range(len(rows) + 1)]
    table[0] = [0] * (len(cols) + 1)  # stored lines before the first sent one: removed (free)
    for a in range(1, len(rows) + 1):
        table[a][0], step[a][0] = table[a - 1][0] + new_line, 1
        for b in range(1, len(cols) + 1):
            options = [(table[a - 1][b] + new_line, 1), (table[a][b - 1], 2)]
            if (rows[a - 1], cols[b - 1]) in cost:
                options.append((table[a - 1][b - 1] + cost[rows[a - 1], cols[b - 1]], 3))
            table[a][b], step[a][b] = min(options)
    reading: dict[int, int] = {}
    a, b = len(rows), len(cols)
    while a > 0:
        move = step[a][b] if b > 0 else 1
        if move == 3:
            reading[rows[a - 1]] = cols[b - 1]
        a, b = (a - 1, b) if move == 1 else (a, b - 1) if move == 2 else (a - 1, b - 1)
    return reading


def _tangles(edges: dict[int, dict[int, int]]) -> list[tuple[list[int], set[int]]]:
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


def _looks_same(a: InvoiceLine, b: InvoiceLine) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in ("description", "quantity", "unit_price", *CODES))


def refuse_unclear(stored: Sequence[InvoiceLine], wanted: Sequence[LineInput], matches: Sequence[Match],
                   holds: Sequence[str], provider: str) -> None:
    """`invalid_argument` when the patch cannot say which stored line it keeps, and guessing would move or drop what
    the tools do not show (`holds[i]`, e.g. "tracking (Region: North)"; "" for nothing): a stored line holding such
    data is left unmatched while a sent line is new (a removed line and an added one cannot be told from one line
    whose description, quantity and price all changed); or a removed line looks in the tools exactly like a kept one
    holding other data with no kept line between them (review lines53 F9: which of two look-alike lines went was a
    guess; with a kept line between them the order tells, lines53b G1 d). Nothing is sent; the
    advice splits the change into patches that can be told apart."""
    matched = {m.index for m in matches if m.index is not None}

    def told_apart(i: int, j: int) -> bool:  # a kept line between them: the order says which one went
        return any(k in matched for k in range(min(i, j) + 1, max(i, j)))

    for i in (i for i in range(len(stored)) if i not in matched):
        twin = next((j for j in sorted(matched) if holds[j] != holds[i] and _looks_same(stored[i], stored[j])
                     and not told_apart(i, j)), None)
        if twin is not None:
            alike = [k for k in range(len(stored)) if _looks_same(stored[i], stored[k])]
            shown = "; ".join(f"line {k + 1}: {holds[k] or 'nothing'}" for k in alike)
            raise DomainError("invalid_argument", f"stored lines {', '.join(str(k + 1) for k in alike)} show the same "
                              f"({stored[i].description!r}) but hold different data in {provider} ({shown}), and this patch "
                              "removes one of them: it is unclear which, so nothing was sent. Make the one to remove "
                              "distinct first (change its description, at its own position, in one patch), then remove it "
                              "in a second one", details={"field": "lines", "stored_lines": [k + 1 for k in alike]})
    lost = [i for i, what in enumerate(holds) if what and i not in matched]
    new = [n for n, m in enumerate(matches) if m.index is None]
    if not (lost and new):
        return
    i, n = lost[0], new[0]
    raise DomainError("invalid_argument", f"lines[{n}] ({wanted[n].description!r}) matches no stored line, and stored line "
                      f"{i + 1} ({stored[i].description!r}), which holds {holds[i]} in {provider} that the tools do not show, "
                      "is not sent back: it is unclear whether the new line replaces it, so nothing was sent. To change "
                      "that line, keep its description (or its quantity and unit price) in this patch and change the rest "
                      "in a second one; to replace it, remove it in one patch and add the new line in another",
                      details={"field": f"lines[{n}]", "stored_line": i + 1})
