"""When a new statement is the same fact as a stored memory, and how two memories' fields merge.

The rule (`same_fact`), applied within one scope, to the stored memories nearest in meaning:

- **exact**: the same text once case, spacing and a final `.`/`!` are ignored. Nothing new to store.
- **edited**: the same statement with a new value, e.g. "The standup is on Monday" → "... Tuesday",
  "30 days" → "90 days", "peanuts" → "peanuts and tree nuts". Both start with the same words, those
  shared leading words are at least half of the stored statement (so subject and predicate are the
  same; only the value changed), and the two are close in meaning (cosine >= `EDIT_COSINE`).
- **restated**: the same fact in other words, e.g. "Carol has a peanut allergy": cosine >=
  `RESTATE_COSINE` and the same first word (the same subject).

Anything else is a different fact, even about the same person: "Carol is allergic to peanuts" and
"Carol lives in Lisbon" share one leading word of five and are far apart in meaning. A statement
that fits the rule but is in truth a second fact ("... allergic to cats" after "... to peanuts")
can be stored on its own with `remember(as_new=true)`; every answer says which text was replaced.
"""

from __future__ import annotations

import re
from typing import Any, Literal

EDIT_COSINE = 0.70
RESTATE_COSINE = 0.92
Match = Literal["exact", "edited", "restated"]
_WORD = re.compile(r"\w+", re.UNICODE)


def normal(text: str) -> str:
    """The text compared for exact duplicates: lower case, single spaces, no final `.` or `!`."""
    return " ".join(text.lower().split()).rstrip(".!").rstrip()


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _shared_start(old: list[str], new: list[str]) -> int:
    count = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        count += 1
    return count


def same_fact(stored: str, new: str, cosine: float, *, exact_only: bool = False) -> Match | None:
    """Whether `new` states the same fact as `stored` (see the module docstring), and why."""
    if normal(stored) == normal(new):
        return "exact"
    if exact_only:
        return None
    old_words, new_words = words(stored), words(new)
    if not old_words or not new_words:
        return None
    shared = _shared_start(old_words, new_words)
    if shared and 2 * shared >= len(old_words) and cosine >= EDIT_COSINE:
        return "edited"
    if cosine >= RESTATE_COSINE and old_words[0] == new_words[0]:
        return "restated"
    return None


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` applied to `target` as a JSON merge patch (RFC 7396): objects merge key by key,
    `null` removes a key, anything else (lists too) replaces the value."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        elif isinstance(value, dict):
            merged[key] = merge_patch({}, value)
        else:
            merged[key] = value
    return merged
