"""A hub error's `structuredContent` is kept out of a result whose tool declares an `outputSchema` the body
does not fit (`hub.errors.error_result`): the TypeScript SDK's client checks error results against it too
(outside review interop26 #1). The text always carries the whole body; a schema that admits the error
body (every domain tool's, `servers.kit.arguments.with_error_alternative`) keeps it structured."""

from __future__ import annotations

import json

from hub.errors import HubToolError
from servers.kit.arguments import with_error_alternative

RESULT = {"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"], "title": "AddOutput"}
WITH_DEFS = {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "required": ["item"],
             "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}


def test_an_error_is_structured_only_where_the_tools_output_schema_admits_it() -> None:
    error = HubToolError("timeout", "server 'e' did not answer within 1s", details={"server": "e"})
    for schema, structured in ((None, True), (RESULT, False), ({"type": "object"}, True),
                               (with_error_alternative(RESULT), True), (with_error_alternative(WITH_DEFS), True),
                               ({"$ref": "#/nowhere"}, False)):
        result = error.to_result(schema)
        assert result.is_error and json.loads(result.content[0].text)["code"] == "timeout", schema
        assert (result.structured_content is not None) is structured, schema


def test_the_widened_schema_still_checks_a_result_and_keeps_its_references() -> None:
    from jsonschema import Draft202012Validator

    widened = with_error_alternative(WITH_DEFS)
    assert widened is not None and widened["type"] == "object" and "$defs" in widened
    check = Draft202012Validator(widened)
    assert check.is_valid({"item": {"id": "a"}}) and check.is_valid({"code": "x", "message": "m", "retryable": False})
    assert not check.is_valid({"item": {}}) and not check.is_valid({"code": "x"})
