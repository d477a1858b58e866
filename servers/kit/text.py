"""Free text every domain stores: no NUL or other C0 control characters except tab, newline and
carriage return (nor DEL). They corrupt exports and terminals and no provider keeps them faithfully,
so they are refused with `invalid_argument` naming the field and position, never silently stripped."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

from servers.kit.errors import DomainError

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _texts(fields: dict[str, str | Iterable[str] | None]) -> Iterator[tuple[str, str, str]]:
    """(field name, label, text) of each given field, a list field's items labelled `name[i]`."""
    for name, value in fields.items():
        if value is None:
            continue
        items = [(name, value)] if isinstance(value, str) else [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        for label, text in items:
            yield name, label, text


def refuse_control_chars(**fields: str | Iterable[str] | None) -> None:
    """Raise `invalid_argument` for the first field (or list item) holding a forbidden control char."""
    for name, label, text in _texts(fields):
        if found := CONTROL.search(text):
            raise DomainError(
                "invalid_argument",
                f"{label} contains control character U+{ord(found.group()):04X} at position {found.start()}; "
                "remove it (only tab, newline and carriage return are allowed in text)",
                details={"field": name},
            )


# Characters that show nothing: format characters (Cf: zero-width space, word joiner, BOM, bidi marks),
# and the other default-ignorable code points (Hangul fillers, variation selectors, the combining
# grapheme joiner, ...), plus the blank braille pattern. A text made only of these and whitespace is blank.
_INVISIBLE = re.compile("[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
                        "\U0001bca0-\U0001bca3\U000e0000-\U000e0fff]")


def is_blank(text: str) -> bool:
    """True if `text` shows nothing: empty, or only whitespace, control, format (U+200B, U+2060,
    U+FEFF, ...) and other default-ignorable characters (`str.strip()` keeps the latter)."""
    return all(c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp") or _INVISIBLE.match(c)
               for c in text)


def refuse_blank(**fields: str | Iterable[str] | None) -> None:
    """Raise `invalid_argument` for the first required text field (or list item) that is blank (`is_blank`)."""
    for name, label, text in _texts(fields):
        if is_blank(text):
            raise DomainError("invalid_argument", f"{label} is empty (only spaces or invisible characters): give visible text",
                              details={"field": name})
