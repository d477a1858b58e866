"""How long and how many rows a domain keeps of something it stores (its event log, its change feed)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

MAX_DAYS = 36_500.0
"""The longest retention accepted (100 years: "keep for ever" in practice). Larger values were accepted and
then made every trim fail on its date arithmetic, so nothing was trimmed at all (outside review round 2 #1)."""
MAX_ROWS = 10**12
"""The most rows accepted (stays inside SQLite's and PostgreSQL's 64-bit integers for counts and offsets)."""


def retention_limits(domain: str, what: str, days: float, rows: int, unit: str,
                     environ: Mapping[str, str] | None = None) -> tuple[float, int]:
    """(seconds, rows) from `<DOMAIN>_<WHAT>_KEEP_DAYS` and `<DOMAIN>_<WHAT>_KEEP_ROWS`, else `days` and
    `rows`; a value that is not a positive number, or is above `MAX_DAYS` / `MAX_ROWS`, is refused (at
    start, where the domain reads it) naming both variables and what to write."""
    env = os.environ if environ is None else environ
    names = f"{domain.upper()}_{what}_KEEP_DAYS", f"{domain.upper()}_{what}_KEEP_ROWS"
    days_text, rows_text = env.get(names[0], ""), env.get(names[1], "")
    try:
        kept_days = float(days_text) if days_text else days
        kept_rows = int(rows_text) if rows_text else rows
    except ValueError:
        kept_days, kept_rows = -1.0, -1
    if not math.isfinite(kept_days) or kept_days <= 0 or kept_rows <= 0:
        raise ValueError(f"{names[0]}={days_text[:20]!r} / {names[1]}={rows_text[:20]!r}: give a number of days above 0 "
                         f"(default {days:g}) and a whole number of {unit} above 0 (default {rows}), or leave them unset")
    if kept_days > MAX_DAYS or kept_rows > MAX_ROWS:
        raise ValueError(f"{names[0]}={days_text[:20]!r} / {names[1]}={rows_text[:20]!r}: too large — at most {MAX_DAYS:g} "
                         f"days and {MAX_ROWS} {unit} (use those to keep everything in practice), or leave them unset "
                         f"for the defaults ({days:g} days, {rows} {unit})")
    return kept_days * 86400.0, kept_rows
