"""How long and how many rows a domain keeps of something it stores (its event log, its change feed)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping


def retention_limits(domain: str, what: str, days: float, rows: int, unit: str,
                     environ: Mapping[str, str] | None = None) -> tuple[float, int]:
    """(seconds, rows) from `<DOMAIN>_<WHAT>_KEEP_DAYS` and `<DOMAIN>_<WHAT>_KEEP_ROWS`, else `days` and
    `rows`; a value that is not a positive number is refused naming both variables and what to write."""
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
    return kept_days * 86400.0, kept_rows
