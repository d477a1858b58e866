"""Which stored line each line of a lines patch stands for (outside review r38b #5).

A lines patch sends every line as the tools show it, and a provider keeps more on a line than the tools show
(Xero: its LineItemID, Tracking, discount; QuickBooks: its Id, class, billable customer). The providers send
each new line with what its stored line holds beyond what the tools show (`xero_mapping.patch_lines`,
`qbo_mapping.patch_lines`), so re-sending a line unchanged, or changing its quantity, price or description,
never drops it; where a patch cannot tell which line a new one replaces, it is refused (`refuse_unclear`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def match_lines(stored: Sequence[InvoiceLine], wanted: Sequence[LineInput]) -> list[Match]:
    """For each of `wanted`, the stored line it stands for; each stored line is used once. Passes over the lines
    still unmatched: (1) a stored line showing exactly the same (description, quantity, unit price, codes); (2) one
    with the same description and codes (its quantity or price changed), at the same position first when as many
    lines are sent as stored; (3) one with the same quantity, price and codes (its description changed), likewise;
    (4) with as many lines, the one at the same position (a line edited in place). In each pass a line takes the stored line at its own position if that
    fits, else the nearest that fits: of two lines that look the same, each keeps its own (outside review r39b #1,
    #4: a change to the first of two like lines landed on the second, with its tracking or billable customer).
    The rest are new lines; stored lines no new line stands for are the ones the patch removes (`refuse_unclear`
    guards what they hold)."""
    found: list[Match | None] = [None] * len(wanted)
    used: set[int] = set()
    same_count = len(stored) == len(wanted)

    def claim(fits: Callable[[InvoiceLine, LineInput], bool], unchanged: bool = False, in_place: bool = False) -> None:
        for own_place in (True, False):  # every line's own position first, then the nearest that fits
            for n, want in enumerate(wanted):
                if found[n] is not None:
                    continue
                places = [n] if own_place or in_place else sorted(range(len(stored)), key=lambda i: (abs(i - n), i))
                index = next((i for i in places if i < len(stored) and i not in used and fits(stored[i], want)), None)
                if index is not None:
                    used.add(index)
                    found[n] = Match(index, unchanged)

    def described(h: InvoiceLine, w: LineInput) -> bool:
        return h.description == w.description and _codes_agree(h, w)

    def priced(h: InvoiceLine, w: LineInput) -> bool:
        return (h.quantity, h.unit_price) == (w.quantity, w.unit_price) and _codes_agree(h, w)

    claim(lambda h, w: described(h, w) and priced(h, w), unchanged=True)
    if same_count:
        claim(described, in_place=True)
    claim(described)  # a description names its line before a price does (review r40 #3: reordered lines with
    if same_count:    # corrected hours took each other's line by their new quantities)
        claim(priced, in_place=True)
    claim(priced)
    if same_count:
        claim(lambda h, w: True, in_place=True)
    return [m if m is not None else Match(None) for m in found]


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
