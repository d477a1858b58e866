"""Listing answers a server sends that the SDK cannot read whole, repaired before its session reads them.

The SDK reads a `tools/list` (`resources/list`, `resources/templates/list`, `prompts/list`) answer
whole: one item it cannot read — a description holding an unpaired UTF-16 surrogate escape or a
byte that is not UTF-8, a schema nested deeper than its JSON parser goes (200 levels), a tool whose
`inputSchema` the negotiated version's schema refuses (`{}`, say) — fails the whole list, and a
failed `tools/list` at connect kept every other tool of that server out of the hub (restarted,
listed again, failing again, forever). Direct SDK clients fare no better: their `list_tools` fails
or hangs on the same answer.

`ListingAnswers` (one per connection) notes the listing requests the hub's SDK session sends, and
the protocol version they are judged by. An answer to one of them is rewritten without what the
SDK cannot read, each dropped item named in a warning with why, the rest served:
- an answer the SDK cannot even parse (not text, too deep) is repaired at once, and so is one over
  `CHEAP_ID_BYTES` nesting past `JSON_DEPTH` that a big line's off-loop parse took as readable;
- an answer it parses but refuses (`mcp_types.methods.validate_server_result`, as the SDK judges it)
  fails its request once; the caller then `arm`s that list method and asks again, and the answer
  to that is repaired. A clean answer is therefore passed on untouched and never checked twice.
An optional field outside the items that the version's schema refuses (a `nextCursor` that is no
string, say) is left out too. Work is bounded: an answer with more than `MAX_BAD_ITEMS` bad items
is not repaired (its request fails as before).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import coerce_request_id
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.methods import validate_server_result
from pydantic import BaseModel, ValidationError

from hub.frontends.stdio.json_lines import is_text, json_object
from hub.frontends.stdio.line_errors import cheap_id

LIST_KEYS = {"tools/list": "tools", "resources/list": "resources", "resources/templates/list": "resourceTemplates",
             "prompts/list": "prompts"}
RESULT_MODELS: dict[str, type[BaseModel]] = {"tools/list": types.ListToolsResult, "resources/list": types.ListResourcesResult,
                                             "resources/templates/list": types.ListResourceTemplatesResult,
                                             "prompts/list": types.ListPromptsResult}
"""The version-free result models the SDK's session validates a result with, after the version's schema."""
METHOD_OF_KIND = {"tools": "tools/list", "resources": "resources/list", "resource_templates": "resources/templates/list",
                  "prompts": "prompts/list"}
"""`hub.downstream.listing` list kinds → list methods."""
HANDSHAKE_FALLBACK = "2025-11-25"
"""The version the SDK judges an answer by before any handshake (its own literal fallback)."""
MAX_NAMED = 5
"""A warning names at most this many dropped items (and counts the rest)."""
MAX_WARNINGS = 5
"""Warnings logged per connection (each different); the rest go to the debug level."""
MAX_BAD_ITEMS = 10_000
"""An answer with more bad items than this is not repaired: finding and naming them costs the loop."""
MAX_WAITING = 1024
"""Requests remembered at most at once (a session pages one list at a time)."""
FORGET_AFTER_S = 600.0
"""A request unanswered this long is forgotten (the SDK gave up on it long before)."""
CHEAP_ID_BYTES = 64 * 1024
"""A line longer than this is not parsed when its id, read without parsing (`cheap_id`), is no listing's."""
JSON_DEPTH = 200
"""Nesting the SDK's JSON parser reads (pydantic-core's limit), counted from the message."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class ListingAnswers:
    """The listing requests one connection has in flight, and the repair of their answers."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        """The server's own logger (its transport logs its faults there too)."""
        self._waiting: dict[tuple[type, Any], tuple[str, str | None, float]] = {}
        """Request id (as the SDK matches it) → (method, version named in the request, when sent)."""
        self._armed: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self._warnings_left = MAX_WARNINGS
        self.negotiated: str | None = None
        """The version the handshake agreed on (from the answer to `initialize`)."""

    @property
    def waiting(self) -> bool:
        """Whether a noted request awaits its answer (one unanswered for `FORGET_AFTER_S` is let go)."""
        if self._waiting and time.monotonic() - next(iter(self._waiting.values()))[2] > FORGET_AFTER_S:
            cutoff = time.monotonic() - FORGET_AFTER_S
            self._waiting = {key: sent for key, sent in self._waiting.items() if sent[2] >= cutoff}
        return bool(self._waiting)

    def arm(self, method: str) -> None:
        """The SDK refused an answer to `method` it could parse: check the answers to it from now on."""
        self._armed.add(method)

    def sent(self, message: Any) -> None:
        """Note a message the SDK session writes (a pydantic JSON-RPC message)."""
        method, request_id = getattr(message, "method", None), getattr(message, "id", None)
        if isinstance(method, str) and request_id is not None:
            self.sent_raw(method, request_id, getattr(message, "params", None))

    def sent_raw(self, method: Any, request_id: Any, params: Any = None, version: str | None = None) -> bool:
        """Note a request sent as JSON: a listing request, or the handshake (for the version it agrees);
        whether it was noted. `version`: the one the request names outside its body (an HTTP
        `MCP-Protocol-Version` header)."""
        if (method in LIST_KEYS or method == "initialize") and (key := answer_key(request_id)) is not None \
                and len(self._waiting) < MAX_WAITING:
            meta = params.get("_meta") if isinstance(params, dict) else None
            named = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
            self._waiting[key] = (method, named if isinstance(named, str) else version, time.monotonic())
            return True
        return False

    def forget(self, request_id: Any) -> None:
        """A noted request that will get no answer (its HTTP request failed)."""
        if (key := answer_key(request_id)) is not None:
            self._waiting.pop(key, None)

    def repair(self, line: bytes, readable: bool | None = None) -> bytes:
        """`line` as the SDK session should read it: unchanged unless it answers a noted listing
        request and holds what the SDK cannot read (see the module). `readable`: whether the SDK
        parses the line as JSON-RPC at all (None: find out)."""
        if not self.waiting:
            return line
        if readable is None:
            if len(line) > CHEAP_ID_BYTES:  # a big answer to something else is not parsed here
                request_id, is_request = cheap_id(line)
                if is_request or (request_id is not None and answer_key(request_id) not in self._waiting):
                    return line
            readable = _sdk_parses(line)
        message = json_object(line) if readable else None  # a big line's is a skeleton: enough for its id
        if message is None:
            message = _lenient(line)
        request_id = message.get("id") if isinstance(message, dict) and "method" not in message else None
        sent = self._waiting.pop(key, None) if (key := answer_key(request_id)) is not None else None
        if sent is None or not isinstance(message.get("result"), dict):
            return line
        method, version = sent[0], sent[1] or self.negotiated or HANDSHAKE_FALLBACK
        if method == "initialize":
            agreed = message["result"].get("protocolVersion")
            self.negotiated = agreed if isinstance(agreed, str) else None
            return line
        if readable and len(line) > CHEAP_ID_BYTES and _too_deep(message["result"], JSON_DEPTH - 2):
            # A big line is read from an object parsed off the loop (`hub.downstream.stdio.sdk_message`), which
            # has no depth limit: "readable", yet the SDK's serializer later refuses it and the connection ends
            # (outside review search19 #5: one deep tool took a 300-tool listing out). Repaired as unparseable.
            readable = False
        if readable and method not in self._armed:
            return line  # the SDK judges it; if it refuses it, the caller arms the method and asks again
        whole = _lenient(line)  # the line itself, not a big line's skeleton
        if not isinstance(whole, dict) or not isinstance(whole.get("result"), dict):
            return line
        repaired = self._repaired(method, version, whole["result"], readable, line)
        if repaired is None:
            return line
        try:
            return json.dumps({**whole, "result": repaired}, ensure_ascii=False).encode()
        except (UnicodeEncodeError, RecursionError, ValueError):
            return line  # what cannot be read lies outside what was checked: the request fails as before

    def _repaired(self, method: str, version: str, result: dict[str, Any], readable: bool, line: bytes) -> dict[str, Any] | None:
        """The result without what the SDK cannot read (None: nothing to repair, or too much)."""
        key = LIST_KEYS[method]
        items = result.get(key)
        if not isinstance(items, list):
            return None
        dropped: dict[int, str] = {}
        if not readable:
            if _SURROGATE_ESCAPE.search(line) or not _utf8(line):
                _find(dropped, items, lambda item: not is_text(item), "not Unicode text (an unpaired surrogate, or bytes not UTF-8)")
            _find(dropped, items, lambda item: _too_deep(item, JSON_DEPTH - 4), "nested deeper than MCP clients read JSON")
        if len(dropped) > MAX_BAD_ITEMS:
            return None
        left_out: list[str] = []
        if not readable:  # a field beside the items (`_meta`, `nextCursor`) may be what the SDK cannot parse
            left_out = [field for field, value in result.items()
                        if field != key and (not is_text(value) or _too_deep(value, JSON_DEPTH - 3))]
        positions = [index for index in range(len(items)) if index not in dropped]  # kept item → its index in `items`
        kept = {**{field: value for field, value in result.items() if field not in left_out},
                key: [items[index] for index in positions]}
        for _ in range(4):  # the items, then an optional field they may have hidden (each of two checks)
            try:
                validate_server_result(method, version, kept)  # the two checks the SDK's session makes
                RESULT_MODELS[method].model_validate(kept, by_name=False)
                break
            except ValidationError as exc:
                refused = _refused(exc, key, kept)
                if refused is None or len(dropped) + len(refused[0]) > MAX_BAD_ITEMS:
                    return None
                for position, why in refused[0].items():
                    dropped[positions[position]] = why
                positions = [index for position, index in enumerate(positions) if position not in refused[0]]
                kept[key] = [items[index] for index in positions]
                for field in refused[1]:
                    del kept[field]
                    left_out.append(field)
            except (KeyError, ValueError):
                return None  # a version or method the SDK does not judge: nothing to do
        else:
            return None
        if not dropped and not left_out:
            return None
        self._warn(method, key, items, dropped, left_out, len(kept[key]))
        return kept

    def _warn(self, method: str, key: str, items: list[Any], dropped: dict[int, str], left_out: list[str], served: int) -> None:
        named = [f"{_label(items[index], index)} ({why})" for index, why in sorted(dropped.items())[:MAX_NAMED]]
        if len(dropped) > MAX_NAMED:
            named.append(f"and {len(dropped) - MAX_NAMED} more")
        if left_out:
            named.append(f"the answer's {', '.join(sorted(left_out))} (not readable, or refused by the protocol's schema)")
        text = "; ".join(named)
        new = (method, text) not in self._warned
        if new and len(self._warned) < 256:
            self._warned.add((method, text))
        level = logging.WARNING if new and self._warnings_left > 0 else logging.DEBUG  # each once, a few per connection
        if level == logging.WARNING:
            self._warnings_left -= 1
            if not self._warnings_left:
                text += " (further such warnings for this server: at debug level)"
        self.log.log(level, "its %s answer holds what no MCP client can read, left out (%d of its %d %s served; "
                      "report it to the server's authors): %s", method, served, len(items), key, text)


def answer_key(request_id: Any) -> tuple[type, Any] | None:
    """A request id as the SDK matches an answer to it (`coerce_request_id`: 2, "2" and "02" are one)."""
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return None
    coerced = coerce_request_id(request_id)
    return (type(coerced), coerced)


def _refused(exc: ValidationError, key: str, kept: dict[str, Any]) -> tuple[dict[int, str], set[str]] | None:
    """What `exc` refuses: items (by position in `kept[key]`, with why) and optional fields outside
    them; None when it refuses something else (the list itself, say) or more than `MAX_BAD_ITEMS`."""
    if exc.error_count() > MAX_BAD_ITEMS:
        return None
    items: dict[int, str] = {}
    fields: set[str] = set()
    for error in exc.errors(include_input=False, include_url=False):
        loc = error.get("loc", ())
        if len(loc) >= 2 and loc[0] == key and isinstance(loc[1], int):
            where = ".".join(str(part) for part in loc[2:]) or "the item"
            items.setdefault(loc[1], f"refused by the protocol's schema: {where}: {error.get('msg', 'invalid')}"[:200])
        elif loc and isinstance(loc[0], str) and loc[0] != key and loc[0] in kept:
            fields.add(loc[0])
        else:
            return None
    return (items, fields) if items or fields else None


def _find(dropped: dict[int, str], items: list[Any], bad: Any, why: str) -> None:
    for index, item in enumerate(items):
        if index not in dropped and bad(item):
            dropped[index] = why
            if len(dropped) > MAX_BAD_ITEMS:
                return


def _sdk_parses(line: bytes) -> bool:
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError:
        return False
    return True


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _lenient(line: bytes) -> Any:
    """The line read by Python's `json`: it takes unpaired surrogates and nesting to ~1,000 levels;
    a byte that is not UTF-8 becomes a lone surrogate (`surrogateescape`), so it is found as not text."""
    try:
        return json.loads(line.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return None


def _too_deep(item: Any, limit: int) -> bool:
    """Whether `item` nests more than `limit` arrays and objects (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(item, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values() if isinstance(child, (dict, list)))
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value if isinstance(child, (dict, list)))
    return False


def _label(item: Any, index: int) -> str:
    """How a warning names an item: its name or URI when that is short text, else its position."""
    if isinstance(item, dict):
        for field in ("name", "uriTemplate", "uri"):
            value = item.get(field)
            if isinstance(value, str) and value and len(value) <= 128 and is_text(value):
                return repr(value)
    return f"item #{index}"
