"""Input rules every ticketing backend shares, checked at the tool surface before anything is written.

Text that is stored (titles, descriptions, comment bodies, labels, types, link types, project keys)
must not hold NUL or other C0 control characters except tab, newline and carriage return (nor DEL):
they corrupt exports and terminals and no provider keeps them faithfully, so they are refused with
`invalid_argument` naming the field and the position, never silently stripped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from servers.kit.errors import DomainError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
PROJECT_KEY = re.compile(r"[A-Z][A-Z0-9_]{0,19}")


def refuse_control_chars(**fields: str | Iterable[str] | None) -> None:
    """Raise `invalid_argument` for the first field (or list item) holding a forbidden control char."""
    for name, value in fields.items():
        if value is None:
            continue
        items = [(name, value)] if isinstance(value, str) else [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        for label, text in items:
            if found := _CONTROL.search(text):
                raise DomainError(
                    "invalid_argument",
                    f"{label} contains control character U+{ord(found.group()):04X} at position {found.start()}; "
                    "remove it (only tab, newline and carriage return are allowed in text)",
                    details={"field": name},
                )


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
