"""Strict arguments for domain tools: unknown names refused, errors that say what is accepted.

The SDK builds each tool's argument model from its signature; pydantic ignores arguments it does
not know, so a misspelled `statuss` (or a `status` on a tool that has none) vanished silently.
`make_strict` publishes `additionalProperties: false` in the tool's `inputSchema` and checks each
call against that schema with the hub's own messages (`hub.argument_errors`), so a domain server
run on its own answers exactly as the hub does in front of it. Failures reach the tool wrapper as
an `invalid_argument` error (under `INVALID`) and are returned as an `isError` result, never as
the SDK's bare text.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from pydantic import PrivateAttr, ValidationError

from hub.argument_errors import HINTS_KEYWORD, argument_error, field_path, sorted_errors
from hub.errors import HubToolError

INVALID = "__mcp_hub_invalid_arguments__"
"""The keyword under which a refused call's error reaches the tool wrapper."""


class StrictArguments(FuncMetadata):
    """`FuncMetadata` whose validation refuses unknown arguments and reports problems as data."""

    tool_name: str = ""
    schema_doc: dict[str, Any] = {}
    _validator: Any = PrivateAttr(default=None)

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        parsed = self.pre_parse_json(arguments_to_validate)
        if self._validator is None:
            self._validator = Draft202012Validator(self.schema_doc, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted_errors(self._validator, parsed)
        if errors:
            return {INVALID: argument_error(self.tool_name, errors)}
        try:
            return self.arg_model.model_validate(parsed).model_dump_one_level()
        except ValidationError as exc:
            return {INVALID: _from_pydantic(self.tool_name, exc)}


def _from_pydantic(tool: str, exc: ValidationError) -> HubToolError:
    """A pydantic failure in the same shape, without the rejected input."""
    problems = [
        {"field": field_path(error["loc"]), "problem": str(error["msg"])[:200]}
        for error in exc.errors(include_input=False, include_url=False)[:10]
    ]
    first = problems[0]
    return HubToolError(
        "invalid_argument", f"invalid arguments for {tool}: {first['field']}: {first['problem']}", details={"errors": problems}
    )


_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})
_LITERALS = frozenset({"enum", "const", "default", "examples", "required"})


def closed(schema: Any) -> Any:
    """A copy of `schema` in which every object with declared `properties` (at any depth, in
    `$defs` too) refuses other keys: a misspelled key inside an invoice line or a memory scope is
    refused like a misspelled argument. Objects without `properties` (free-form maps such as
    `metadata`) and ones that already say what extra keys may hold are left as they are."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: closed(sub) for name, sub in value.items()}  # name → schema, not a schema
        elif key in _LITERALS:
            out[key] = value
        else:
            out[key] = closed(value)
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


ERROR_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "retryable": {"type": "boolean"},
                   "retry_after_s": {"type": "number"}, "details": {"type": "object"}},
    "required": ["code", "message", "retryable"],
}
"""The shape of a failed call's `structuredContent` (`hub.errors.ToolErrorBody`)."""


def with_error_alternative(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """A tool's `outputSchema` that also admits its error body: the result's own schema or the error's.
    The TypeScript SDK's client (Claude Code, Claude Desktop, the Inspector) checks an `isError` result's
    `structuredContent` against the output schema too (typescript-sdk#1943), so a domain's `not_found` or
    `conflict` reached it as `-32602 Structured content does not match` and the agent never saw it (outside
    review interop26 #1). `$defs` stay at the root, where the schema's `#/$defs/…` references point."""
    if schema is None:
        return None
    branch = {key: value for key, value in schema.items() if key not in ("$defs", "$schema")}
    widened: dict[str, Any] = {"type": "object", "anyOf": [branch, ERROR_RESULT_SCHEMA]}
    if "$defs" in schema:
        widened["$defs"] = schema["$defs"]
    return widened


def make_strict(tool: Tool, not_here: dict[str, str] | None = None) -> None:
    """Close the tool's `inputSchema` (and every object inside it) to unknown keys and validate
    calls against it; `not_here` is advice for arguments the tool does not take."""
    tool.parameters = {**closed(tool.parameters), "additionalProperties": False}
    if not_here:
        tool.parameters[HINTS_KEYWORD] = dict(not_here)
    current = tool.fn_metadata
    tool.fn_metadata = StrictArguments(
        arg_model=current.arg_model,
        output_schema=with_error_alternative(current.output_schema),
        output_model=current.output_model,
        wrap_output=current.wrap_output,
        tool_name=tool.name,
        schema_doc=tool.parameters,
    )
