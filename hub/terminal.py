"""Untrusted text shown on an operator's terminal, made inert.

Downstream servers (tool names, titles, descriptions, instructions, errors they report, results),
callers (names they ask for, arguments, audited) and any hub answering `mcp-hub status` are not the
operator: text from them may carry ANSI/OSC escape sequences that clear the screen, paint fake
lines ("all servers verified OK"), set the window title or plant hyperlinks (outside review
search15 #5). Every plain-text CLI output of such text goes through `inert`. Decisions:
- **What is escaped:** every C0 control (U+0000–U+001F), DEL (U+007F), every C1 control
  (U+0080–U+009F: some terminals act on an 8-bit CSI sent as UTF-8), the line and paragraph
  separators (U+2028/U+2029) and the bidirectional controls (U+061C, U+200E/U+200F, U+202A–U+202E,
  U+2066–U+2069), which reorder what is shown ("Trojan Source"). Everything else, ordinary Unicode
  (accents, CJK, emoji with their joiners), is kept as is.
- **How:** as Python writes the character in a string literal (`\\x1b`, `\\n`, `\\t`, `\\u202e`), so
  the operator sees that something was there, and what; a backslash the text itself holds is left
  as it is (the rendering is for eyes, not to be parsed back).
- `multiline=True` (a tool result's text printed by `mcp-hub call`) keeps line feeds and tabs, which
  only lay text out; a carriage return is still escaped (it would overwrite the line).
- `--json` output needs none of this: `json.dumps` escapes every control and non-ASCII character.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: object, multiline: bool = False) -> str:
    """`text` (anything: `str()` of it) with the characters a terminal acts on written out as escapes."""
    value = text if isinstance(text, str) else str(text)
    return (_UNSAFE_KEEPING_LINES if multiline else _UNSAFE).sub(_escape, value)


def first_line(text: str | None, width: int) -> str:
    """The first line of an untrusted description, inert and cut to `width` characters (a table cell)."""
    lines = (text or "").strip().splitlines()[:1]
    return inert(lines[0] if lines else "")[:width]
