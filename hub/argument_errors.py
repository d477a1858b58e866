"""Argument errors an agent can fix: what is wrong, where, and what is accepted instead.

jsonschema's own messages embed the rejected value (a 200,000-character string comes back in full),
say "is not valid under any of the given schemas" for an optional enum, and name an unknown
argument without saying which ones exist. `describe` rewrites each finding into a short problem
that names the field, the allowed values or names, and never more than a short preview of a value.
The hub uses it for relayed calls and the domain kit for its own tools, so both read the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hub.errors import HubToolError

PREVIEW_CHARS = 60
HINTS_KEYWORD = "x-unknown-argument-hints"
"""An `inputSchema` keyword (ignored by validators) mapping an argument a tool does not take to
advice, e.g. `{"status": "status changes go through transition_ticket"}`: added to the error."""
MAX_PROBLEMS = 10


def preview(value: Any) -> str:
    """A short, single-line rendering of a rejected value (never the whole of a long one)."""
    text = repr(value)
    if len(text) <= PREVIEW_CHARS:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters as text"
    return f"{text[:PREVIEW_CHARS]}… ({size})"


def field_path(path: Iterable[Any]) -> str:
    """`a.b[2].c` for a jsonschema/pydantic location; `(arguments)` for the top level."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(arguments)"


def _choices(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _allowed_in(schemas: Iterable[Any]) -> tuple[list[Any], bool]:
    """Enum/const values offered by the branches of an anyOf/oneOf, and whether null is one."""
    allowed: list[Any] = []
    nullable = False
    for branch in schemas:
        if not isinstance(branch, dict):
            continue
        if "enum" in branch:
            allowed.extend(branch["enum"])
        elif "const" in branch:
            allowed.append(branch["const"])
        elif branch.get("type") == "null":
            nullable = True
        elif isinstance(branch.get("items"), dict) and "enum" in branch["items"]:
            allowed.extend(branch["items"]["enum"])
    return allowed, nullable


def problem_of(error: Any) -> str:
    """One jsonschema `ValidationError` as a short problem statement."""
    kind = error.validator
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties":
        known = sorted((schema.get("properties") or {}).keys())
        extra = sorted(k for k in (instance or {}) if k not in known) if isinstance(instance, dict) else []
        names = ", ".join(repr(k if len(k) <= PREVIEW_CHARS else k[:PREVIEW_CHARS] + "…") for k in extra[:5])
        hints = schema.get(HINTS_KEYWORD) if isinstance(schema.get(HINTS_KEYWORD), dict) else {}
        advice = "; ".join(str(hints[k]) for k in extra if k in hints)
        return f"unknown argument(s) {names}; accepted: {', '.join(known) or '(none)'}" + (f". {advice}" if advice else "")
    if kind == "enum":
        return f"{preview(instance)} is not one of: {_choices(error.validator_value)}"
    if kind == "const":
        return f"{preview(instance)} must be {error.validator_value!r}"
    if kind in ("anyOf", "oneOf"):
        allowed, nullable = _allowed_in(error.validator_value)
        if allowed:
            tail = " (or null)" if nullable else ""
            return f"{preview(instance)} is not one of: {_choices(allowed)}{tail}"
        deepest = _deepest(error.context or [])
        if deepest is not None:
            return problem_of(deepest)
        return f"{preview(instance)} does not match any accepted form"
    if kind == "maxLength" and isinstance(instance, str):
        return f"is {len(instance)} characters long; at most {error.validator_value} allowed"
    if kind == "minLength" and isinstance(instance, str):
        return f"is {len(instance)} characters long; at least {error.validator_value} required"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{preview(instance)} is not of type {expected}"
    if kind == "required":
        return error.message  # names the missing property, no value in it
    if kind == "format":
        return f"{preview(instance)} is not a valid {error.validator_value}"
    limit = error.validator_value
    if kind in ("maxItems", "minItems") and isinstance(instance, list):
        # jsonschema's message leads with the whole list: cut at 200 characters it lost the reason and echoed the
        # values (outside review user34 #10)
        most = kind == "maxItems"
        return f"has {len(instance)} items; at {'most' if most else 'least'} {limit} {'allowed' if most else 'required'}"
    if kind in ("maxProperties", "minProperties") and isinstance(instance, dict):
        most = kind == "maxProperties"
        return f"has {len(instance)} entries; at {'most' if most else 'least'} {limit} {'allowed' if most else 'required'}"
    if kind in _BOUNDS:
        return f"{preview(instance)} {_BOUNDS[kind]} {limit}"
    if kind == "uniqueItems":
        return "holds the same item more than once; give each once"
    if kind == "pattern":
        return f"{preview(instance)} does not match the pattern {preview(limit)}"
    return f"{preview(instance)} is refused ({kind}: {preview(limit)})"


_BOUNDS = {"maximum": "is greater than the maximum of", "minimum": "is less than the minimum of",
           "exclusiveMaximum": "must be less than", "exclusiveMinimum": "must be greater than",
           "multipleOf": "is not a multiple of"}


def _deepest(errors: Sequence[Any]) -> Any:
    """The sub-error of an anyOf that got furthest (longest path), the most telling one."""
    if not errors:
        return None
    return max(errors, key=lambda e: (len(list(e.absolute_path)), e.validator != "type"))


def argument_error(tool: str, errors: Sequence[Any]) -> HubToolError:
    """An `invalid_argument` error for jsonschema findings on a call to `tool`."""
    problems = [{"field": field_path(e.absolute_path), "problem": problem_of(e)} for e in errors[:MAX_PROBLEMS]]
    first = problems[0]
    return HubToolError(
        "invalid_argument",
        f"invalid arguments for {tool}: {first['field']}: {first['problem']}",
        details={"errors": problems},
    )


def sorted_errors(validator: Any, arguments: Any) -> list[Any]:
    """jsonschema findings for `arguments`, in field order (deterministic for callers and tests)."""
    return sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.path])
