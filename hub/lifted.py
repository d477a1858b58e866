"""Long strings of a big JSON line kept as the bytes they came in (issue 18 item 6).

A 20 MB result is almost all one or two strings (the text, and `structuredContent` repeating it).
Parsing them into `str` and encoding them again holds the GIL for hundreds of milliseconds, in
whatever thread does it, and so stalls every other caller. Instead, `lift` replaces each string of
`LIFT_MIN_BYTES` or more with a short placeholder string and parses only that small skeleton; the
policies see the skeleton (what they read — `isError`, `_meta`, an error's `code` — is small), and a
front that writes JSON (`splice`) puts the original bytes back in place of each placeholder as it
writes, so the client gets the server's strings byte for byte. Whoever needs real strings (the
SDK's server face, the library API) gets them from `restore`, once.

A lifted string is checked as it is cut out — valid UTF-8, no raw control character, only the
escapes JSON allows — so a line that `json` would refuse is still refused, never relayed.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import orjson

LIFT_MIN_BYTES = 64 * 1024
"""Strings at least this long (in the line's bytes) are lifted out of a big line."""
MAX_SCAN_STEPS = 20_000
"""A line whose scan takes more steps in Python than this, or than one step per 512 bytes of it if
that is more (a string, or a quote after a backslash, is a step), is parsed whole: lifting pays
for a few long strings, while orjson parses a line of many short ones (a table of records) faster
than Python can walk it (5,000 records with 40 escaped quotes each: 0.22 s to scan, 3 ms to
parse). The scan lets the loop run between its steps; a whole parse holds the GIL throughout, so
a long text beside a table (40 MB and 20,000 rows) is still lifted."""
BACKSLASH_RUN_LOOKED_AT = 64
"""A run of backslashes longer than this is not walked in Python (a server could send megabytes of them)."""
ESCAPED_QUOTES_LOOKED_AT = 16
"""A string with more quotes after a backslash than this is read by orjson a slice at a time to
find where it closes: looking at each in Python took ~5 s for a 24 MB JSON document returned as text."""

logger = logging.getLogger("hub.lifted")
_TOKEN = os.urandom(16).hex()
_PLACEHOLDER = "\x00mcp-hub-lifted:" + _TOKEN + ":"
"""How a lifted string reads in the skeleton (plus its index); the random token keeps a real value
from ever being taken for one."""
_PLACEHOLDER_JSON = b'"\\u0000mcp-hub-lifted:' + _TOKEN.encode() + b":"
"""The placeholder as JSON encoders write it (`orjson`, `json`, pydantic), up to `<line>.<index>`."""
PLACEHOLDER_MARK = _PLACEHOLDER_JSON
"""What a written JSON text holds if it holds a placeholder."""
SPLICE_SCOPE_KEY = "mcp_hub.splice"
"""Set in an ASGI scope whose responses `hub.frontends.http.splice.SpliceLifted` splices."""
SPLICING: ContextVar[bool] = ContextVar("mcp_hub_splicing", default=False)
"""True in the tasks of a front whose writer splices (the stdio front's SDK path)."""
_PIECE = 1024 * 1024
_COLON_NEXT = re.compile(rb"[ \t\r\n]*:")


class BigList(list):  # type: ignore[type-arg]
    """The `content` of a result read from a big line: marks a result whose reply is encoded off
    the loop, and carries the strings lifted out of that line (`lifted`). It passes unchanged
    through the shallow copies policies make of a result."""

    lifted: Lifted | None = None


class Lifted:
    """The strings lifted out of one line: the line, and where each string's JSON text (between its
    quotes, still escaped) lies in it."""

    __slots__ = ("ident", "line", "spans")

    def __init__(self, ident: int, line: bytes, spans: list[tuple[int, int]]) -> None:
        self.ident = ident
        self.line = line
        self.spans = spans

    def raw(self, index: int) -> memoryview:
        start, end = self.spans[index]
        return memoryview(self.line)[start:end]

    def text(self, index: int) -> str:
        start, end = self.spans[index]
        return str(orjson.loads(self.line[start - 1:end + 1]))


def lift(line: bytes, minimum: int = LIFT_MIN_BYTES) -> tuple[bytes, Lifted] | None:
    """`line` with every string of `minimum` bytes or more replaced by a placeholder, and what was
    lifted; None when nothing was (no such string, too many short ones to scan, or a long string
    that is not valid JSON text — the caller then parses the whole line as before). Runs in a
    worker thread: each step holds the GIL for a short slice only."""
    find = line.find
    ident = secrets.randbits(63)  # unguessable: a placeholder is spliced only by whoever knows it
    pieces: list[bytes] = []
    spans: list[tuple[int, int]] = []
    done = steps = 0
    budget = max(MAX_SCAN_STEPS, len(line) // 512)
    at = 0
    while (start := find(b'"', at)) >= 0:
        end, checked, looked_at = _closing_quote(line, start)
        if end < 0:
            return None
        if end - start - 1 >= minimum and not _is_key(line, end):
            if not checked and not _repeats(line, start + 1, end, spans) and not _valid_text(line, start + 1, end):
                return None
            pieces += (line[done:start], _PLACEHOLDER_JSON + b'%d.%d"' % (ident, len(spans)))
            spans.append((start + 1, end))
            done = end + 1
        at = end + 1
        steps += 1 + looked_at
        if steps > budget:
            return None
    if not spans:
        return None
    pieces.append(line[done:])
    return b"".join(pieces), Lifted(ident, line, spans)


def _is_key(line: bytes, end: int) -> bool:
    """Whether the string closing at `end` is an object's key (a colon follows): keys stay in the
    skeleton, so whatever reads it (policies, `restore`) sees them as they are."""
    return _COLON_NEXT.match(line, end + 1) is not None


def _closing_quote(line: bytes, start: int) -> tuple[int, bool, int]:
    """Where the string opening at `start` closes (-1: nowhere, or not valid JSON text when that
    was checked on the way), whether its text was checked, and how many quotes after a backslash
    were looked at in Python (a few at most: a string with more, such as a JSON document returned
    as text, is read by orjson a slice at a time instead, which checks it on the way)."""
    find = line.find
    end = find(b'"', start + 1)
    for looked_at in range(ESCAPED_QUOTES_LOOKED_AT):
        if end < 0 or line[end - 1] != 0x5C:
            return end, False, looked_at
        back = end - 1
        while line[back - 1] == 0x5C:
            back -= 1
            if end - back > BACKSLASH_RUN_LOOKED_AT:
                return _closing_quote_by_slices(line, start + 1), True, looked_at
        if (end - back) % 2 == 0:
            return end, False, looked_at  # the backslashes before it escape each other
        end = find(b'"', end + 1)
    return _closing_quote_by_slices(line, start + 1), True, ESCAPED_QUOTES_LOOKED_AT


def _closing_quote_by_slices(line: bytes, at: int) -> int:
    """The closing quote of the string whose text starts at `at`, every slice of the text on the
    way parsed by orjson as a string of its own (-1: no closing quote, or text JSON refuses)."""
    size = len(line)
    step = min(4096, _PIECE)  # most strings are short: the first slices are small, then they grow
    while at < size:
        cut = _slice_end(line, at, at + step, size)
        step = min(step * 2, _PIECE)
        if cut < 0:
            return -1
        piece = b'"' + line[at:cut] + b'"'
        try:
            orjson.loads(piece)
        except orjson.JSONDecodeError as exc:
            # Either the string closes inside this slice (orjson then reads one string and finds
            # more right after it) or its text is not JSON: only the first has a string up to there.
            close = exc.pos - 1
            if not piece.isascii():  # orjson counts characters, not bytes
                close = len(piece.decode("utf-8", "surrogateescape")[:close].encode("utf-8", "surrogateescape"))
            if close <= 0 or piece[close] != 0x22:
                return -1
            try:
                orjson.loads(piece[:close + 1])
            except orjson.JSONDecodeError:
                return -1
            return at + close - 1
        at = cut
    return -1


def _slice_end(line: bytes, at: int, cut: int, limit: int) -> int:
    """A place at or before `cut` (and after `at`, where a slice of string text starts outside any
    escape) to end that slice so that it is JSON text of its own: not inside an escape, not between
    the two halves of a surrogate pair, not inside a UTF-8 sequence; -1 when there is none.
    `limit`, where the text (or the line) ends, is always such a place."""
    if cut >= limit:
        return limit
    while cut > at:
        backslash = line.rfind(b"\\", max(at, cut - 6), cut)
        if backslash < 0:  # no escape reaches `cut`: a place unless a UTF-8 sequence goes on there
            if not 0x80 <= line[cut] < 0xC0:
                return cut
            cut -= 1
            continue
        run = backslash  # a run of backslashes after something that is no backslash starts an escape
        while run > at and line[run - 1] == 0x5C:
            run -= 1
            if backslash - run > BACKSLASH_RUN_LOOKED_AT:
                return -1  # text that is mostly backslashes: parsed whole
        if run > at and not _low_surrogate_at(line, run):
            return run
        cut = run
    return -1


def _low_surrogate_at(line: bytes, at: int) -> bool:
    return line[at + 1:at + 3] in (b"ud", b"uD") and line[at + 3:at + 4] in (b"c", b"d", b"e", b"f", b"C", b"D", b"E", b"F")


def _repeats(line: bytes, start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Whether `line[start:end]` is byte for byte a string already lifted (and so checked): a tool's
    text result is usually repeated as its `structuredContent`. About 3 ms for 24 MB, compared in
    place; checking non-ASCII text again took ~30 ms."""
    size = end - start
    same_size = [other for other, other_end in spans if other_end - other == size]
    if not same_size:
        return False
    import numpy

    view = numpy.frombuffer(line, dtype=numpy.uint8)
    return any(all(numpy.array_equal(view[start + at:start + min(at + _PIECE, size)], view[other + at:other + min(at + _PIECE, size)])
                   for at in range(0, size, _PIECE)) for other in same_size)


def _valid_text(line: bytes, start: int, end: int) -> bool:
    """Whether `line[start:end]` is what JSON allows between quotes: read in place when it is
    printable ASCII without a backslash, else by orjson a slice at a time."""
    if _printable_ascii(line, start, end):
        return True  # nothing to decode and no escape: the common big text (base64, CSV, ASCII prose)
    at = start
    while at < end:
        cut = _slice_end(line, at, at + _PIECE, end)
        if cut < 0:
            return False
        try:
            orjson.loads(b'"' + line[at:cut] + b'"')
        except orjson.JSONDecodeError:
            return False
        at = cut
    return True


def _printable_ascii(line: bytes, start: int, end: int) -> bool:
    """Whether `line[start:end]` holds only bytes 0x20–0x7f and no backslash: read in place
    (numpy's min and max over a view, about 1 ms for 24 MB, the GIL let go a slice at a time)
    where copying each slice for `bytes.translate` and `isascii` cost ~30 ms of page faults."""
    if line.find(b"\\", start, end) >= 0:
        return False
    import numpy  # a dependency already (the memory domain's embedder); imported on the first big line only

    view = numpy.frombuffer(line, dtype=numpy.uint8)
    for at in range(start, end, _PIECE * 4):
        piece = view[at:min(at + _PIECE * 4, end)]
        if piece.min() < 0x20 or piece.max() > 0x7F:
            return False
    return True


def is_placeholder(value: Any) -> bool:
    """Whether `value` is the placeholder of a lifted string (read from a skeleton)."""
    return isinstance(value, str) and value.startswith(_PLACEHOLDER)


def lifted_of(body: Any) -> Lifted | None:
    """What was lifted out of the line a result `body` came from, if anything."""
    content = body.get("content") if isinstance(body, dict) else None
    return content.lifted if type(content) is BigList else None


def restore(value: Any, lifted: Lifted) -> Any:
    """`value` with every placeholder replaced by the string it stands for (new containers)."""
    if isinstance(value, str):
        if value.startswith(_PLACEHOLDER):
            ident, index = value[len(_PLACEHOLDER):].split(".")
            return lifted.text(int(index)) if int(ident) == lifted.ident else value
        return value
    if isinstance(value, dict):
        return {key: restore(item, lifted) for key, item in value.items()}
    if isinstance(value, list):
        return [restore(item, lifted) for item in value]
    return value


def splice(encoded: bytes, lifted: Lifted | Callable[[int], Lifted | None] | None,
           used: list[int] | None = None) -> list[bytes | memoryview]:
    """The pieces to write for `encoded` (a JSON text written from a skeleton): each placeholder
    replaced by the original bytes of its string, which are not copied. `lifted` is what the
    skeleton was lifted from, or a function finding that by its number (`splice_held`). A
    placeholder nothing answers to (let go, forged, malformed) is written as an empty string: the
    token never leaves the process. The numbers of the lines it spliced from go to `used`."""
    if lifted is None or _PLACEHOLDER_JSON not in encoded:
        return [encoded]
    find = lifted if callable(lifted) else (lambda ident: lifted if ident == lifted.ident else None)
    pieces: list[bytes | memoryview] = []
    done = missing = 0
    while (at := encoded.find(_PLACEHOLDER_JSON, done)) >= 0:
        start = at + len(_PLACEHOLDER_JSON)
        close = encoded.find(b'"', start)
        if close < 0:
            break  # not a placeholder a JSON encoder wrote: no string closes it
        number = _PLACEHOLDER_NUMBER.fullmatch(encoded, start, close)
        source = find(int(number[1])) if number else None
        raw = source.raw(int(number[2])) if source is not None and int(number[2]) < len(source.spans) else None  # type: ignore[index]
        pieces += (encoded[done:at + 1], raw if raw is not None else b"")
        missing += raw is None
        if raw is not None and used is not None:
            used.append(int(number[1]))  # type: ignore[index]
        done = close
    pieces.append(encoded[done:])
    if missing:
        logger.warning("%d placeholder(s) of big results' text no longer held (let go, or not the hub's): sent empty", missing)
    return pieces


_PLACEHOLDER_NUMBER = re.compile(rb"([0-9]{1,20})\.([0-9]{1,9})")
HOLD_S = 600.0
"""How long a skeleton handed to a writer that splices (`hold`) keeps its strings at most (its
answer was never written: the client left)."""
MAX_HELD_BYTES = 1024 * 1024 * 1024
"""How many bytes of big lines are held at most, the newest always kept; past it the oldest is let
go (its answer, if still to be written, goes out with empty text and a warning)."""
_held: dict[int, tuple[float, Lifted]] = {}


def hold(lifted: Lifted) -> None:
    """Keep `lifted` for whichever writer writes the answer holding its skeleton: the HTTP request
    that made the call, or another one (the legacy SSE stream, a later leg of a 2026-07-28 call),
    or the stdio front's SDK path. Its number is random (`Lifted`), so only the skeleton the hub
    itself wrote names it; the skeleton never leaves the process (`splice`)."""
    now = time.monotonic()
    for ident in [i for i, (since, _) in _held.items() if now - since > HOLD_S]:
        del _held[ident]
    _held[lifted.ident] = (now, lifted)
    while len(_held) > 1 and sum(len(kept.line) for _, kept in _held.values()) > MAX_HELD_BYTES:
        del _held[next(iter(_held))]


def splice_held(encoded: bytes) -> list[bytes | memoryview]:
    """`splice` from what `hold` kept; what it used is let go (each answer is written once)."""
    used: list[int] = []

    def find(ident: int) -> Lifted | None:
        entry = _held.get(ident)
        return entry[1] if entry is not None else None

    pieces = splice(encoded, find, used)
    for ident in used:
        _held.pop(ident, None)
    return pieces
