"""JSON lines: how the hub reads and writes one JSON-RPC message per line, fast.

`json_line` writes with orjson, `json_object` reads with orjson, each falling back to `json` where
orjson would read or write differently (integers beyond 64 bits, lone surrogates). A big line
(`LineReader` collects it in a buffer of its own) is parsed off the loop by `parse_big`, with
its long strings lifted out (`hub.lifted`); its object is remembered for the `json_object(line)`
call that follows. A reply to such a result is written off the loop (`encode_off_loop`).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import orjson

from hub.lifted import BigList, lift, splice

_LINE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_WIDE_NUMBER = re.compile(rb"[0-9]{19}")
"""19 digits in a row: possibly an integer beyond 64 bits, which orjson would read as a float."""
_DIGITS = b"0123456789"


def _may_hold_wide_number(line: bytes) -> bool:
    """Whether `line` may hold 19 digits in a row. Most lines have fewer than 19 digits in all,
    which deleting them shows in a quarter of a microsecond; only the others pay for the regex
    (about 2 µs on a typical answer, more than orjson takes to parse it)."""
    return len(line) - len(line.translate(None, _DIGITS)) >= 19 and _WIDE_NUMBER.search(line) is not None


def json_line(message: Any) -> bytes:
    """`message` as one compact JSON-RPC line (UTF-8, newline-terminated). orjson writes it over
    ten times faster than `json`; what orjson refuses (an integer beyond 64 bits, a lone
    surrogate) goes through `json` as before."""
    try:
        return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError included
        return _LINE_ENCODER.encode(message).encode() + b"\n"


def json_object(line: bytes) -> dict[str, Any] | None:
    """The JSON object on `line`, or None if it is not one. Read by orjson (about three times
    faster), unless the line holds what orjson reads differently from `json` (an integer beyond 64
    bits, which it turns into a float) or refuses (`NaN`, a lone surrogate): then by `json`, so
    every line means what it did."""
    if _parsed is not None and _parsed[0] is line:
        return _parsed[1]  # a big line, parsed off the loop by the `LineReader` that read it
    message = _decode(line, _may_hold_wide_number(line))
    return message if isinstance(message, dict) else None


def _decode(line: bytes, wide: bool) -> Any:
    """The line's JSON value, or None if it is not JSON: by orjson unless the line may hold a number
    orjson reads differently (`wide`) or orjson refuses it, then by `json`. None too for JSON no
    peer could use: nested past the parsers' depth, or holding an unpaired UTF-16 surrogate escape
    (`"\ud800"`: `json` reads it into a string that cannot be encoded, orjson and the SDK refuse it);
    `hub.frontends.stdio.line_errors` answers such a line by its id."""
    if not wide:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(line.decode())  # JSON-RPC on stdio is UTF-8; a str skips json's encoding sniffing
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        return None
    return None if _SURROGATE_ESCAPE.search(line) and not is_text(value) else value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def is_text(value: Any) -> bool:
    """Whether every string in `value` is Unicode text (no unpaired surrogate): it can be written as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


_parsed: tuple[bytes, Any] | None = None
"""The last big line parsed off the loop and its object (one: lines are handled in order)."""


def remember_parsed(line: bytes, message: Any) -> None:
    """Keep what `parse_big` read from `line`, for the `json_object(line)` calls that follow."""
    global _parsed
    _parsed = (line, message)


def forget_parsed(line: bytes) -> None:
    """Let go of `line`'s object once the line has been handled."""
    global _parsed
    if _parsed is not None and _parsed[0] is line:
        _parsed = None


def parse_big(line: bytearray) -> tuple[bytearray, Any]:
    """In a worker thread: the line and its JSON object (None if not one). The long strings of a
    result are lifted out (`hub.lifted`) and only the small rest is parsed: parsing a string into
    `str` holds the GIL, which would stall the loop as surely as parsing on it. The line stays a
    `bytearray`, which reads like `bytes` everywhere a line goes (converting it would copy it)."""
    lifted = lift(line)
    if lifted is not None:
        message = _decode(lifted[0], _may_hold_wide_number_in_slices(lifted[0]))  # a skeleton may be big too (numbers)
        result = message.get("result") if isinstance(message, dict) and "id" in message else None
        if isinstance(result, dict) and type(result.get("content")) is list:
            result["content"] = BigList(result["content"])
            result["content"].lifted = lifted[1]
            return line, message
    message = _decode(line, _may_hold_wide_number_in_slices(line))  # not a result: parsed whole
    if not isinstance(message, dict):
        return line, None
    result = message.get("result")
    if isinstance(result, dict) and type(result.get("content")) is list:
        result["content"] = BigList(result["content"])
    return line, message


_DIGITS_AS_NINES = bytes(0x39 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_NINES = b"9" * 19


def _may_hold_wide_number_in_slices(line: bytes) -> bool:
    """`_may_hold_wide_number` for a big line, a slice at a time (18 bytes of overlap), so the GIL
    is let go between: every digit made a `9` and the rest a space, then one substring search
    (about 1 ms a megabyte; the regex took ~30 ms a megabyte of text full of short numbers)."""
    step = 1024 * 1024
    return any(line[i:i + step + 18].translate(_DIGITS_AS_NINES).find(_NINETEEN_NINES) >= 0 for i in range(0, len(line), step))


def is_big(body: dict[str, Any]) -> bool:
    """Whether a result body came from a big line (its reply is best encoded off the loop)."""
    return type(body.get("content")) is BigList


async def encode_off_loop(message: Any) -> list[bytes | memoryview]:
    """`json_line(message)` written in a worker thread, as pieces for `Send`: a result's lifted
    strings (`hub.lifted`) go out as the bytes they came in, neither decoded nor copied."""
    content = message.get("result", {}).get("content")
    lifted = content.lifted if type(content) is BigList else None
    encoded = await asyncio.get_running_loop().run_in_executor(None, json_line, message)
    return splice(encoded, lifted)
