"""Free text every domain stores: no NUL or other C0 control characters except tab, newline and
carriage return (nor DEL). They corrupt exports and terminals and no provider keeps them faithfully,
so they are refused with `invalid_argument` naming the field and position, never silently stripped."""

from __future__ import annotations

import re
from collections.abc import Iterable

from servers.kit.errors import DomainError

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def refuse_control_chars(**fields: str | Iterable[str] | None) -> None:
    """Raise `invalid_argument` for the first field (or list item) holding a forbidden control char."""
    for name, value in fields.items():
        if value is None:
            continue
        items = [(name, value)] if isinstance(value, str) else [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        for label, text in items:
            if found := CONTROL.search(text):
                raise DomainError(
                    "invalid_argument",
                    f"{label} contains control character U+{ord(found.group()):04X} at position {found.start()}; "
                    "remove it (only tab, newline and carriage return are allowed in text)",
                    details={"field": name},
                )
