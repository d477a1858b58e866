"""Argument errors an agent reads (outside review user34 #10): a list over its maxItems or a number over its maximum
got jsonschema's own message cut at 200 characters — the rejected value echoed, the reason ("at most 100") cut off."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hub.argument_errors import argument_error, sorted_errors

SCHEMA = {"type": "object", "properties": {
    "attendees": {"type": "array", "items": {"type": "string"}, "maxItems": 100, "minItems": 1, "uniqueItems": True},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    "share": {"type": "number", "exclusiveMaximum": 1, "multipleOf": 0.25},
    "meta": {"type": "object", "maxProperties": 2},
    "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
}}


def problem(arguments: dict[str, Any]) -> tuple[str, str]:
    error = argument_error("t", sorted_errors(Draft202012Validator(SCHEMA), arguments))
    first = error.body.details["errors"][0]  # type: ignore[index]
    return first["field"], first["problem"]


@pytest.mark.parametrize(("arguments", "field", "says"), [
    ({"attendees": [f"person{n}@example.com" for n in range(3000)]}, "attendees", "has 3000 items; at most 100 allowed"),
    ({"attendees": []}, "attendees", "has 0 items; at least 1 required"),
    ({"attendees": ["a@x.test", "a@x.test"]}, "attendees", "more than once"),
    ({"limit": 10 ** 250}, "limit", "is greater than the maximum of 100"),
    ({"limit": 0}, "limit", "0 is less than the minimum of 1"),
    ({"share": 1}, "share", "must be less than 1"),
    ({"share": 0.3}, "share", "is not a multiple of 0.25"),
    ({"meta": {"a": 1, "b": 2, "c": 3}}, "meta", "has 3 entries; at most 2 allowed"),
    ({"code": "x" * 5000}, "code", "does not match the pattern"),
])
def test_each_limit_says_what_it_is_without_echoing_the_value(arguments: dict[str, Any], field: str, says: str) -> None:
    where, text = problem(arguments)
    assert where == field and says in text, text
    assert len(text) < 200 and "person10@" not in text and "x" * 100 not in text, text  # a preview at most
