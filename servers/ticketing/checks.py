"""Input rules every ticketing backend shares, checked at the tool surface before anything is written.

Text that is stored (titles, descriptions, comment bodies, labels, types, link types, project keys)
follows the kit's rule for free text (`servers.kit.text.refuse_control_chars`: no NUL or other C0
control characters but tab, newline and carriage return); project keys have a format of their own.
"""

from __future__ import annotations

import re

from servers.kit.errors import DomainError
from servers.kit.text import refuse_control_chars

__all__ = ["PROJECT_KEY", "project_key", "refuse_control_chars"]

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
