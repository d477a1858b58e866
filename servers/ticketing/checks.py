"""Input rules every ticketing backend shares, checked at the tool surface before anything is written.

Text that is stored (titles, descriptions, comment bodies, labels, types, link types, project keys)
follows the kit's rule for free text (`servers.kit.text.refuse_control_chars`: no NUL or other C0
control characters but tab, newline and carriage return); project keys have a format of their own.
"""

from __future__ import annotations

import re

from servers.kit.errors import DomainError
from servers.kit.text import is_blank, refuse_control_chars
from servers.ticketing.normal import fold, nfc

__all__ = ["LINK_TYPES", "PROJECT_KEY", "label_list", "link_type", "project_key", "refuse_control_chars"]

PROJECT_KEY = re.compile(r"[A-Z][A-Z0-9_]{0,19}")


def project_key(key: str) -> str:
    """A new project's key in canonical form (upper case), or `invalid_argument`."""
    canonical = key.strip().upper()
    if not PROJECT_KEY.fullmatch(canonical):
        raise DomainError(
            "invalid_argument",
            "project key must be 1-20 letters, digits or underscores starting with a letter (e.g. PAY); "
            "it is stored in upper case",
            details={"field": "key"},
        )
    return canonical


def label_list(labels: list[str] | None) -> list[str] | None:
    """Labels as stored: trimmed, in NFC, each once (the first spelling of ones equal but for case or
    canonical form), none empty (outside review: `["x", "x", " y"]` was stored as given)."""
    if labels is None:
        return None
    out: list[str] = []
    seen: set[str] = set()
    for label in labels:
        name = nfc(label.strip())
        if is_blank(name):
            raise DomainError("invalid_argument", "labels: a label is empty or only spaces or invisible characters; leave it out",
                              details={"field": "labels"})
        if fold(name) not in seen:
            seen.add(fold(name))
            out.append(name)
    return out


LINK_TYPES: dict[str, tuple[str, bool]] = {
    "blocks": ("blocks", False), "block": ("blocks", False), "is blocked by": ("blocks", True), "blocked by": ("blocks", True),
    "relates to": ("relates to", False), "relates": ("relates to", False), "related to": ("relates to", False),
    "duplicates": ("duplicates", False), "duplicate": ("duplicates", False), "is duplicated by": ("duplicates", True),
    "duplicated by": ("duplicates", True),
}
"""The link types a tracker without its own (the embedded one) knows: spelling → (type, reversed).
A reversed one ("is blocked by") is stored the other way round."""


def link_type(raw: str) -> tuple[str, bool]:
    """A link type in canonical form and whether it reads the other way round, or `invalid_argument`
    (outside review: a typo, "bloks", was stored as a new type)."""
    found = LINK_TYPES.get(" ".join(raw.lower().split()))
    if found is None:
        raise DomainError("invalid_argument", f"unknown link type {raw[:40]!r}: use 'blocks', 'relates to' or 'duplicates' "
                          "(or 'is blocked by', 'is duplicated by')", details={"field": "type"})
    return found
