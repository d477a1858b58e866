"""Per call: the arguments are checked against the tool's `inputSchema` before anything is sent."""

from __future__ import annotations

import logging
from typing import Any

from hub.argument_errors import argument_error, sorted_errors
from hub.catalog.catalog import ToolCatalog, ToolRoute
from hub.errors import HubToolError
from hub.policies.base import GRANTED, Admission, NeverWaits, ToolCall

logger = logging.getLogger("hub")


class ArgumentPolicy(NeverWaits):
    """Refuses a call whose arguments do not fit the tool's schema with `invalid_argument`. A tool whose
    schema the hub cannot check is let through (logged once a tool): the server is then the judge — an
    invalid schema, and a valid one Python's validator cannot run: an ECMA-262 `pattern` Python's `re`
    lacks (`\p{L}`, `(?<name>…)`, as zod writes them), a `$ref` to nowhere or to another document
    (outside review interop26 #2: every call of such a tool failed with a bare JSON-RPC error code 0, an
    HTTP 500 on the 2026-07-28 HTTP path, where a direct call worked). `format` is an annotation, as JSON
    Schema 2020-12 has it, never asserted: the hub refused UUIDs and times its servers accept (#4)."""

    def __init__(self, catalog: ToolCatalog) -> None:
        self._catalog = catalog
        self._unchecked: set[str] = set()
        """Tools whose schema was found uncheckable (logged once each)."""

    def admit(self, call: ToolCall) -> Admission:
        error = self.error(call.route, call.arguments)
        return GRANTED if error is None else error

    def error(self, route: ToolRoute, arguments: dict[str, Any]) -> HubToolError | None:
        """What is wrong with `arguments` against the tool's input schema, or None."""
        if too_deep(arguments):
            return HubToolError(
                "invalid_argument",
                f"the arguments of {route.exposed} are nested more than {MAX_ARGUMENT_DEPTH} levels deep; nothing was "
                "sent. Flatten them (or pass deep data as a JSON string), then call again.",
                details={"max_depth": MAX_ARGUMENT_DEPTH})
        fast = self._catalog.fast_check(route)
        if fast is not None and fast(arguments):
            return None
        try:
            errors = sorted_errors(self._catalog.validator(route), arguments)
        except Exception as exc:  # noqa: BLE001 — the schema's fault (arguments are plain JSON): the server judges
            if route.exposed not in self._unchecked:
                self._unchecked.add(route.exposed)
                reason = exc.message if isinstance(exc, _schema_error()) else f"{type(exc).__name__}: {str(exc)[:200]}"
                logger.warning("%s has an inputSchema the hub cannot check (%s); its arguments are left to its server",
                               route.exposed, reason)
            return None
        return argument_error(route.exposed, errors) if errors else None


MAX_ARGUMENT_DEPTH = 100
"""Deepest nesting of objects and arrays a call's arguments may have. The MCP SDKs' JSON readers stop
near 200 levels for a whole message — a Python SDK stdio server drops such a line without an answer, a
legacy SSE server answers its POST 400 and its session can send no more — while the hub's own reader
(orjson) goes to 1,024, so deep arguments ran on one path and hung or broke a session on another
(outside review engines16). Refused on every path, before anything is sent, well inside every reader."""


SDK_READ_DEPTH = 200
"""The nesting the MCP Python SDK's JSON-RPC reader takes for a whole message (pydantic's parser; 201
levels are refused). A front answers a deeper line itself (`hub.frontends.stdio.line_errors`)."""


def too_deep(value: Any, limit: int = MAX_ARGUMENT_DEPTH) -> bool:
    """Whether `value` nests objects/arrays more than `limit` levels (iterative; stops at the first too deep)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _schema_error() -> type[Exception]:
    from jsonschema.exceptions import SchemaError

    return SchemaError
