"""A compiled first check of a call's arguments against the tool's `inputSchema`.

`jsonschema-rs` accepts valid arguments in well under a microsecond; the Python `jsonschema`
validator takes tens of microseconds for the same answer, a visible share of a relayed call.
Arguments the fast check rejects go on to the Python validator, whose findings (and messages)
are what the caller sees, so an error reads the same as before.

Schemas on which the two could disagree are left to the Python validator alone: `pattern`/`patternProperties`
(Python's regular expressions against ECMA's) and references outside the document. Neither asserts
`format` (an annotation, as JSON Schema 2020-12 has it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hub")

_PYTHON_ONLY_KEYWORDS = frozenset({"pattern", "patternProperties", "$dynamicRef", "$recursiveRef"})

FastCheck = Callable[[Any], bool]


def fast_check(schema: dict[str, Any]) -> FastCheck | None:
    """`is_valid` of a compiled validator for `schema`, or None where only the Python validator may judge."""
    if not _fast_checkable(schema):
        return None
    try:
        import jsonschema_rs

        return jsonschema_rs.validator_for(schema, validate_formats=False).is_valid  # type: ignore[no-any-return]
    except Exception as exc:  # boundary: a schema the compiled validator refuses is checked the slow way
        logger.debug("no compiled argument check for a schema: %s", exc)
        return None


def _fast_checkable(node: Any) -> bool:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _PYTHON_ONLY_KEYWORDS:
                return False
            if key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
                return False
            if not _fast_checkable(value):
                return False
        return True
    if isinstance(node, list):
        return all(_fast_checkable(item) for item in node)
    return True
