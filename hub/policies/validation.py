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
    """Refuses a call whose arguments do not fit the tool's schema with `invalid_argument`. A tool
    whose schema is itself invalid is let through (logged): the server is then the judge."""

    def __init__(self, catalog: ToolCatalog) -> None:
        self._catalog = catalog

    def admit(self, call: ToolCall) -> Admission:
        error = self.error(call.route, call.arguments)
        return GRANTED if error is None else error

    def error(self, route: ToolRoute, arguments: dict[str, Any]) -> HubToolError | None:
        """What is wrong with `arguments` against the tool's input schema, or None."""
        fast = self._catalog.fast_check(route)
        if fast is not None and fast(arguments):
            return None
        try:
            errors = sorted_errors(self._catalog.validator(route), arguments)
        except _schema_error() as exc:
            logger.warning("%s has an invalid inputSchema; arguments not validated: %s", route.exposed, exc.message)
            return None
        return argument_error(route.exposed, errors) if errors else None


def _schema_error() -> type[Exception]:
    from jsonschema.exceptions import SchemaError

    return SchemaError
