"""What the hub answers for a JSON-RPC line it cannot serve as sent (its stdio front, a child's stdout).

JSON-RPC 2.0 names the errors: `-32700` parse error (not JSON, not UTF-8 — with the request's id
when a top-level `"id"` of a request can still be read from the line's start, else `null`), `-32600` invalid request (not a request object, `jsonrpc` missing or not "2.0",
a method that is not a string, an id that is not a string or an integer, a line over the size cap,
an id already in flight), `-32602` invalid params (`params` present but not an object — MCP's
params are always objects). A batch (a JSON array) is answered element by element in one array, as
JSON-RPC 2.0 asks; MCP dropped batching, so every element that is a request is refused with -32600.
Notifications (no id) are never answered, whatever is wrong with them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container
from typing import Any

from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR

from hub.frontends.stdio.json_lines import is_text, json_line, json_object
from hub.frontends.stdio.line_pipes import MAX_LINE_BYTES, cut_by_end
from hub.policies.validation import SDK_READ_DEPTH, too_deep

CAP_SETTING = "$MCP_HUB_MAX_LINE_BYTES"


def error_line(request_id: int | str | None, code: int, message: str) -> bytes:
    """One JSON-RPC error answer, as a line."""
    return json_line(error_reply(request_id, code, message))


def error_reply(request_id: int | str | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def readable_id(value: Any) -> bool:
    """MCP request ids are strings or integers (not null, not a float, not a boolean)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def overlong_message(what: str, cap: int = MAX_LINE_BYTES) -> str:
    return (f"{what} is longer than the hub's line cap of {cap} bytes ({CAP_SETTING}) and was dropped; "
            "ask for less (a page, a range) or raise the cap")


def top_level_id(prefix: bytes) -> tuple[int | str | None, bool]:
    """The id of the JSON object `prefix` starts (if its `"id"` member comes within the prefix),
    and whether a `"method"` member was seen: what an overlong line can still be answered by.
    Only members of the outer object count, never an `"id"` inside `params`."""
    depth = 0
    i, n = 0, len(prefix)
    found: int | str | None = None
    method = False
    while i < n:
        byte = prefix[i]
        if byte == 0x22:  # a string: skip it, and see whether it is a member name of the outer object
            end = i + 1
            while end < n and prefix[end] != 0x22:
                end += 2 if prefix[end] == 0x5C else 1
            if end >= n:
                break
            key = prefix[i + 1:end]
            i = end + 1
            if depth == 1:
                while i < n and prefix[i] in b" \t\r\n":
                    i += 1
                if i < n and prefix[i] == 0x3A:  # ':' — it was a member name
                    method = method or key == b"method"
                    if key == b"id":
                        found = _scalar(prefix, i + 1)
            continue
        if byte in b"{[":
            depth += 1
        elif byte in b"}]":
            depth -= 1
        i += 1
    return found, method


def _scalar(prefix: bytes, start: int) -> int | str | None:
    """The integer or string that starts at `start` (after blanks), if whole within `prefix`."""
    import orjson

    while start < len(prefix) and prefix[start] in b" \t\r\n":
        start += 1
    end = start
    if start < len(prefix) and prefix[start] == 0x22:
        end += 1
        while end < len(prefix) and prefix[end] != 0x22:
            end += 2 if prefix[end] == 0x5C else 1
        end += 1
    else:
        while end < len(prefix) and prefix[end] in b"-0123456789":
            end += 1
    try:
        value = orjson.loads(prefix[start:end])
    except orjson.JSONDecodeError:
        return None
    return value if readable_id(value) else None


def invalid_line(line: bytes, message: Any) -> bytes | None:
    """None when the line is a valid JSON-RPC message (`message` is what `json_object(line)` read,
    None if not an object); else the error answer to send — empty when nobody waits for one (a
    broken notification or response): the line is dropped either way."""
    if message is None:
        return _not_an_object(line)
    has_id = "id" in message
    request_id = message.get("id")
    answer_id = request_id if readable_id(request_id) else None
    if "method" not in message:
        if "result" in message or "error" in message:  # the client answering one of our requests
            return None if message.get("jsonrpc") == "2.0" else b""
        return error_line(answer_id, INVALID_REQUEST, "Invalid request: neither a method nor a result")
    if message.get("jsonrpc") != "2.0":
        problem = "missing" if "jsonrpc" not in message else f"{_short(message.get('jsonrpc'))}, not \"2.0\""
        return error_line(answer_id, INVALID_REQUEST, f"Invalid request: jsonrpc is {problem}") if has_id else b""
    if not isinstance(message["method"], str):
        return error_line(answer_id, INVALID_REQUEST, "Invalid request: method must be a string") if has_id else b""
    if has_id and answer_id is None:
        return error_line(None, INVALID_REQUEST, f"Invalid request: id must be a string or an integer, not {_short(request_id)}")
    if "params" in message and not isinstance(message["params"], dict):
        kind = _JSON_TYPES.get(type(message["params"]).__name__, "value")
        return error_line(answer_id, INVALID_PARAMS, f"Invalid params: params must be an object, not a {kind}") if has_id else b""
    if line.count(b"[") + line.count(b"{") > SDK_READ_DEPTH and too_deep(message, SDK_READ_DEPTH):
        # The SDK's reader would drop it unanswered (outside review engines16 #2); the counts rule out most lines cheaply.
        return error_line(answer_id, PARSE_ERROR, f"Parse error: the line nests JSON more than {SDK_READ_DEPTH} levels "
                          "deep, past what MCP peers read; flatten it") if has_id else b""
    return None


def _not_an_object(line: bytes) -> bytes | None:
    """Not a JSON object: a parse error, a batch, or another JSON value."""

    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # A request whose id can still be read gets it back, so its client is not left waiting forever.
        request_id, has_method = top_level_id(line[:4096])
        why = "nests JSON deeper than the hub reads" if isinstance(exc, RecursionError) else "is not JSON in UTF-8"
        return error_line(request_id if has_method and readable_id(request_id) else None, PARSE_ERROR,
                          f"Parse error: the line {why}")
    if isinstance(value, dict):  # JSON, but not text (`json_object`): an unpaired UTF-16 surrogate escape
        if "method" in value and "id" not in value:
            return b""  # a notification: never answered
        return error_line(_answerable_id(value), PARSE_ERROR,
                          "Parse error: the line holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff "
                          "without its other half), which is not Unicode text; escape characters as whole pairs")
    if not isinstance(value, list):
        return error_line(None, INVALID_REQUEST, "Invalid request: not a JSON-RPC object")
    if not value:
        return error_line(None, INVALID_REQUEST, "Invalid request: an empty batch")
    answers = []
    for element in value:
        if isinstance(element, dict) and "id" not in element and "method" in element:
            continue  # a notification: never answered
        element_id = element.get("id") if isinstance(element, dict) else None
        answers.append(error_reply(element_id if readable_id(element_id) else None, INVALID_REQUEST,
                                   "Invalid request: batches are not supported (MCP removed JSON-RPC batching); "
                                   "send each message on its own line"))
    return json_line(answers) if answers else b""


_JSON_TYPES = {"str": "string", "list": "array", "int": "number", "float": "number", "bool": "boolean", "NoneType": "null"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def id_key(request_id: int | str) -> str:
    """Ids compare as JSON values: 7 and "7" are different requests."""
    return f"{type(request_id).__name__}:{request_id}"


def duplicate_message(request_id: int | str) -> str:
    return f"Invalid request: id {_short(request_id)} is already in use by a request in flight; use a new id"


class FrontGuard:
    """Answers, on the hub's own stdio, every line the SDK's server would leave unanswered: a
    malformed line (`invalid_line`), a request reusing the id of one still in flight, a line over
    the cap. Lines it passes on to the SDK are valid; the requests among them are tracked until
    the SDK answers them (`answered`) or the client cancels them (`cancelled`)."""

    def __init__(self, reply: Callable[[bytes], None]) -> None:
        self._reply = reply
        self._sdk_ids: set[str] = set()

    def take(self, line: bytes) -> bool:
        """For a front without the `tools/call` fast path: `check` the line on its own."""
        return self.check(line, json_object(line), ())

    def check(self, line: bytes, message: Any, busy: Container[str]) -> bool:
        """True if the line was answered here (or dropped), False to pass it to the SDK. `busy`
        holds the keys of requests in flight elsewhere (the fast path's)."""
        error = invalid_line(line, message)
        if error is not None:
            if error:
                self._reply(error)
            return True
        if "method" in message and "id" in message:
            key = id_key(message["id"])
            if key in self._sdk_ids or key in busy:
                self._reply(error_line(message["id"], INVALID_REQUEST, duplicate_message(message["id"])))
                return True
            self._sdk_ids.add(key)
        return False

    def busy(self, key: str) -> bool:
        """Whether a request the SDK serves holds this id."""
        return key in self._sdk_ids

    def answered(self, request_id: Any) -> None:
        if readable_id(request_id):
            self._sdk_ids.discard(id_key(request_id))

    cancelled = answered
    """A cancelled request gets no answer: its id is free again."""

    def overlong(self, prefix: bytes) -> None:
        """A line over the cap: answer it by its id if that can be read, else with id null."""
        request_id, has_method = top_level_id(prefix)
        if has_method or request_id is None:
            self._reply(error_line(request_id, INVALID_REQUEST, overlong_message("the request")))


def overlong_answer(prefix: bytes) -> bytes | None:
    """For an overlong line from a server: if it answers a request whose id can be read, the error
    answer (a line, without newline) that fails that request instead, naming the cap; else None."""
    return error_answer(prefix, overlong_message("its answer"))


def error_answer(prefix: bytes, message: str) -> bytes | None:
    """For a server's answer that starts with `prefix` and cannot be passed on: the error answer (a
    line, without newline) that fails its request, `message` saying why; None if no id can be read."""
    return _error_answer(top_level_id(prefix), message)


def error_answer_to(request_prefix: bytes, message: str) -> bytes | None:
    """The error answer failing the request that starts with `request_prefix` (its id read from its
    start), for an answer to it that cannot be passed on and whose own id cannot be read."""
    return _error_answer((top_level_id(request_prefix[:4096])[0], False), message)


def error_answer_at_ends(head: bytes, tail: bytes, message: str) -> bytes | None:
    """`error_answer` for an answer known only by its first bytes `head` and last bytes `tail`: its
    id read from its start, else as the last member of its message (`cheap_id`)."""
    return _error_answer(cheap_id(head[:4096] + tail[-4096:]), message)


def unreadable_answer(line: bytes) -> bytes | None:
    """For a line from a server that is not valid JSON-RPC (not JSON, not text, nested too deep, not
    a message): if it answers a request whose id can be read — parsed whole where `json` reads the
    line, else from its start, or as the last member of its outer object — the error answer (a
    line, without newline) that fails that request at once instead of at its deadline; else None.

    None too for a last line the end of the pipe cut off (`hub.frontends.stdio.line_pipes.cut_by_end`):
    decision (outside review faults19 #5), its writer was killed while writing its answer (OOM, SIGKILL),
    and that is no bug of the server: its calls fail when the process's exit is known, as a lost
    connection naming the exit code and stderr (`hub.calls.errors`, waiting up to `LOSS_REASON_WAIT_S`),
    and a read-only call is retried, as for a crash one instant earlier. Failed here by its id, the call
    was told "the server has a bug", not retryable, whenever the line was read before the exit was seen.
    A last line that reads whole (only its newline lost) is still an answer: nothing of it was lost."""
    if cut_by_end(line):
        return None
    return _error_answer(_answer_id(line), "the server's answer could not be read: it is not a valid JSON-RPC "
                                           "message in UTF-8 text; the server has a bug, report it to its authors")


_LAST_ID = re.compile(rb'[,{]\s*"id"\s*:\s*("(?:[^"\\]|\\.){0,256}"|-?[0-9]{1,19})\s*}\s*$')


def _answer_id(line: bytes) -> tuple[int | str | None, bool]:
    """The id of the message on `line` and whether it has a method, read as far as it can be."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        return _answerable_id(value), "method" in value
    return cheap_id(line)


def cheap_id(line: bytes) -> tuple[int | str | None, bool]:
    """The id of the message on `line` read without parsing it — from its start, or as the last
    member of its outer object — and whether a method was seen at its start."""
    request_id, has_method = top_level_id(line[:4096])
    if request_id is None and not has_method and (last := _LAST_ID.search(line[-4096:])):
        request_id = _scalar(last.group(1), 0)
    return request_id, has_method


def _answerable_id(message: dict[str, Any]) -> int | str | None:
    """The message's id if an answer can carry it back (a string or integer that is Unicode text)."""
    request_id = message.get("id")
    return request_id if readable_id(request_id) and is_text(request_id) else None


DROPPED_BY_HUB = {"dropped_by": "mcp-hub"}
"""The `data` of an error answer the hub makes in place of a server's answer it could not pass on."""


def _error_answer(found: tuple[int | str | None, bool], message: str) -> bytes | None:
    """The error answer (a line, without newline) failing the request `found` (its id, and whether
    the line was a request itself: then there is nothing to fail); None without an id."""
    from mcp_types import INTERNAL_ERROR

    request_id, has_method = found
    if request_id is None or has_method:
        return None
    return json_line({"jsonrpc": "2.0", "id": request_id,
                      "error": {"code": INTERNAL_ERROR, "message": message, "data": DROPPED_BY_HUB}})[:-1]
