"""Unicode and case rules the ticketing tools compare text by (outside review 8, defects 6 and 7).

Text arrives in either canonical form: macOS and some keyboards send NFD ("e" + combining
diaeresis), most others NFC ("ë"). The tool surface turns every stored or searched text into NFC
(`nfc`), so one label is kept once whichever form it was typed in; the embedded store compares
labels, search text and emails through `fold` (NFC, then Unicode case folding), registered in
SQLite as `casefold` (trimmed, for labels) and `fold` (untrimmed, for substrings), so rows written
in NFD before this rule match too, and `école` finds `ÉCOLE` (SQLite's `LIKE` folds ASCII only).
A name the caller gives for something the provider names (a status or transition, a type, a group)
is compared through `same_name` / `name_key`, so "Résolu" typed in NFD, or "RÉSOLU", finds the
provider's "Résolu" (outside review 18, defect 13).
"""

from __future__ import annotations

import sqlite3
import unicodedata
from typing import TypeVar

T = TypeVar("T")


def nfc(value: T) -> T:
    """`value` in Unicode NFC: a string, or each string of a list; anything else as it is."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)  # type: ignore[return-value]
    if isinstance(value, list):
        return [nfc(item) for item in value]  # type: ignore[return-value]
    return value


def fold(value: str) -> str:
    """`value` for comparing without case or canonical form: NFC, case-folded, NFC again."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).casefold())


def name_key(value: str) -> str:
    """A status, transition or type name as compared: trimmed, inner runs of space as one `_`, folded
    (`fold`), so "In Progress", "in_progress" and an NFD "Résolu" each compare equal to their spellings."""
    return fold("_".join(value.split()))


def same_name(given: str, provider_name: str) -> bool:
    """Whether the name a caller gave is the provider's name, whatever its case, canonical form and spacing."""
    return name_key(given) == name_key(provider_name)


def is_email(value: str) -> bool:
    """Whether a user reference is an email address (ids and names never hold an `@`)."""
    return "@" in value


def _sql_casefold(value: object) -> object:
    return fold(value.strip()) if isinstance(value, str) else value


def _sql_fold(value: object) -> object:
    return fold(value) if isinstance(value, str) else value


def register(db: sqlite3.Connection) -> None:
    """Make `casefold(x)` (trimmed) and `fold(x)` available to the store's SQL."""
    db.create_function("casefold", 1, _sql_casefold, deterministic=True)
    db.create_function("fold", 1, _sql_fold, deterministic=True)
