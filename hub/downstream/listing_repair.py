"""Listing answers from a stdio child, checked item by item before the SDK session reads them.

The SDK reads a `tools/list` (`resources/list`, `resources/templates/list`, `prompts/list`) answer
whole: one item it cannot read — a description holding an unpaired UTF-16 surrogate escape,
a schema nested deeper than its JSON parser goes (200 levels), a tool without its `inputSchema`
— fails the whole list, and a failed `tools/list` at connect kept every other tool of that
server out of the hub (it was restarted, listed again, and failed again, forever). Direct SDK
clients fare no better: their `list_tools` fails or hangs on the same answer.

`ListingAnswers` remembers the ids of the listing requests the hub's SDK session sends to the
child; an answer to one of them that the SDK would refuse is rewritten without the items it
cannot read (each named in a warning, with why), so the others are served. An answer the SDK
reads as it is goes through untouched (checked once: the result model, as the SDK will).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ValidationError

from hub.frontends.stdio.json_lines import is_text, json_object

_LISTS: dict[str, tuple[str, type[BaseModel], type[BaseModel]]] = {
    "tools/list": ("tools", types.Tool, types.ListToolsResult),
    "resources/list": ("resources", types.Resource, types.ListResourcesResult),
    "resources/templates/list": ("resourceTemplates", types.ResourceTemplate, types.ListResourceTemplatesResult),
    "prompts/list": ("prompts", types.Prompt, types.ListPromptsResult),
}
MAX_NAMED = 5
"""A warning names at most this many dropped items (and counts the rest)."""
FORGET_AFTER_S = 600.0
"""A listing request unanswered this long is forgotten (the SDK gave up on it long before)."""
MAX_WAITING = 1024
"""Listing requests remembered at most at once (a session pages one list at a time)."""


class ListingAnswers:
    """The listing requests one child's SDK session has in flight, and the repair of their answers."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._waiting: dict[tuple[type, Any], tuple[str, float]] = {}
        """The listing requests sent and not answered yet: their method and when they were sent."""

    @property
    def waiting(self) -> bool:
        """Whether a listing request awaits its answer (one unanswered for `FORGET_AFTER_S` is let go)."""
        if self._waiting and time.monotonic() - next(iter(self._waiting.values()))[1] > FORGET_AFTER_S:
            cutoff = time.monotonic() - FORGET_AFTER_S
            self._waiting = {key: sent for key, sent in self._waiting.items() if sent[1] >= cutoff}
        return bool(self._waiting)

    def sent(self, message: Any) -> None:
        """Note a message the SDK session writes to the child (a listing request is remembered)."""
        if isinstance(message, types.JSONRPCRequest):
            self.sent_raw(message.method, message.id)

    def sent_raw(self, method: Any, request_id: Any) -> None:
        """Note a request sent as JSON (its `method` and `id` as read from it)."""
        if method in _LISTS and isinstance(request_id, (int, str)) and len(self._waiting) < MAX_WAITING:
            self._waiting[(type(request_id), request_id)] = (method, time.monotonic())

    def repair(self, line: bytes, readable: bool | None = None) -> bytes:
        """`line` as the SDK session should read it: unchanged unless it answers a listing request
        and holds items the SDK cannot read, which are dropped and named in a warning. `readable`:
        whether the SDK parses the line as JSON-RPC at all (None: find out)."""
        if not self.waiting:
            return line
        message = json_object(line) if readable else None
        if message is None:
            message = _lenient(line)
        request_id = message.get("id") if isinstance(message, dict) and "method" not in message else None
        if not isinstance(request_id, (int, str)):
            return line
        sent = self._waiting.pop((type(request_id), request_id), None)  # answered: an error too
        if sent is None or not isinstance(message.get("result"), dict):
            return line
        method = sent[0]
        key, item_model, result_model = _LISTS[method]
        result, items = message["result"], message["result"].get(key)
        if not isinstance(items, list):
            return line  # the SDK reports the malformed result as it would
        if readable is None:
            readable = _sdk_reads(line)
        if readable and _valid(result_model, result):
            return line
        kept: list[Any] = []
        dropped: list[str] = []
        for index, item in enumerate(items):
            why = _unreadable(key, item_model, item)
            if why is None:
                kept.append(item)
            else:
                dropped.append(f"{_label(item, index)} ({why})")
        if not dropped:
            return line
        try:
            repaired = json.dumps({**message, "result": {**result, key: kept}}, ensure_ascii=False).encode()
        except (UnicodeEncodeError, RecursionError, ValueError):
            return line  # what cannot be read lies outside the items: the request fails as before
        named = "; ".join(dropped[:MAX_NAMED]) + (f"; and {len(dropped) - MAX_NAMED} more" if len(dropped) > MAX_NAMED else "")
        self._log.warning("its %s answer holds %d item(s) no MCP client can read, left out (the other %d are served; "
                          "report it to the server's authors): %s", method, len(dropped), len(kept), named)
        return repaired


def _sdk_reads(line: bytes) -> bool:
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError:
        return False
    return True


def _lenient(line: bytes) -> Any:
    """The line read by Python's `json`, which takes unpaired surrogates and nesting to ~1,000 levels."""
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _valid(model: type[BaseModel], value: Any) -> bool:
    try:
        model.model_validate(value, by_name=False)
    except ValidationError:
        return False
    return True


def _unreadable(key: str, item_model: type[BaseModel], item: Any) -> str | None:
    """Why the SDK could not read `item` in a listing answer, or None if it can."""
    if not is_text(item):
        return "not Unicode text: an unpaired UTF-16 surrogate escape"
    try:
        # In the place it will have in the answer the hub's SDK session reads, and its clients then.
        types.jsonrpc_message_adapter.validate_json(json.dumps({"jsonrpc": "2.0", "id": 0, "result": {key: [item]}}),
                                                    by_name=False)
    except ValidationError:
        return "nested deeper than MCP clients read JSON"
    try:
        item_model.model_validate(item, by_name=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the item"
        return f"not a valid {item_model.__name__}: {where}: {first.get('msg', 'invalid')}"[:200]
    return None


def _label(item: Any, index: int) -> str:
    """How a warning names an item: its name or URI when that is short text, else its position."""
    if isinstance(item, dict):
        for field in ("name", "uriTemplate", "uri"):
            value = item.get(field)
            if isinstance(value, str) and value and len(value) <= 128 and is_text(value):
                return repr(value)
    return f"item #{index}"
