"""The years a domain's dates may name (outside review user34 #1, #2, #8): outside them a date is a typo (0026 for
2026, 9999 for 2029). An event ending in 9999 broke every later read of its calendar (`datetime` arithmetic over its
span left the years Python has), a daily series begun in year 2 cost seconds on every query, and an invoice dated 9999
answered `internal` (its due date past the last year Python has) while year 0001 was posted to the ledger."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from servers.kit.errors import DomainError

YEARS = (1900, 2199)
"""The first and last year a date, a time or a range may name."""

D = TypeVar("D", bound=date)


def in_years(day: D | None, field: str, shown: str | None = None) -> D | None:
    """`day` (a date or a date-time; None passes), or `invalid_argument` naming `field` when its year is outside
    `YEARS`; `shown`: the caller's own text for it, previewed in the message."""
    if day is not None and not YEARS[0] <= day.year <= YEARS[1]:
        text = shown if shown is not None else day.isoformat()
        text = text if len(text) <= 60 else text[:60] + "…"
        raise DomainError("invalid_argument", f"{field}: {text!r} is in the year {day.year}; dates are taken in the years "
                          f"{YEARS[0]} to {YEARS[1]} (a typo in the year?)", details={"field": field})
    return day
