"""Turning a text or HTML file's bytes into text, or refusing it: never text with characters made up.

Decisions (outside review writes28 #8: a UTF-16 file and a Latin-1 file were indexed as U+FFFD and NULs,
and answered "created"):
- A byte-order mark decides: UTF-8 (with BOM), UTF-16 or UTF-32, little or big endian.
- Without one: UTF-8 if the bytes are valid UTF-8 (every ASCII file is). UTF-16 without a BOM (NUL bytes
  at every other position, as in mostly-Latin text) is read as UTF-16. HTML may name its charset in the
  first 2 KB (`<meta charset=…>`); a codec Python knows is used, strictly.
- Otherwise Windows-1252 (a superset of Latin-1's printable characters, what older Western-European
  files are), but only when the text reads as such: no run of 4 or more non-ASCII characters in a row (a
  Cyrillic, Greek, Chinese or Japanese code page read as Windows-1252 makes such runs of gibberish).
- Every decode is strict: a byte sequence invalid in the chosen encoding, or control characters other
  than tab, newline, carriage return and form feed where they mark a binary file (`_binary`: a NUL, any in
  a Windows-1252 guess, more than 1 in 100 characters otherwise), refuse the file with
  `invalid_argument` saying where, and to save it as UTF-8. Nothing is stored then.
"""

from __future__ import annotations

import codecs
import re

from servers.kit.errors import DomainError

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_FOREIGN_RUN = re.compile(r"[^\x00-\x7f]{4,}")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
FIX = "save it as UTF-8 (in most editors: Save As, encoding UTF-8) and ingest it again"


def decode_text(name: str, data: bytes, html: bool = False) -> str:
    """The text of file `name` from its bytes, by the rules above; `invalid_argument` when it cannot be read."""
    encoding = _sniff(data, html)
    if encoding is None:
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            encoding = "cp1252"
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                text = ""
            if not text or _FOREIGN_RUN.search(text):
                raise DomainError("invalid_argument", f"{name} is not UTF-8 (invalid byte at offset {exc.start}) and does not "
                                  "read as Windows-1252/Latin-1 either: it is in another encoding, e.g. a Cyrillic or East "
                                  f"Asian code page. Nothing was stored; {FIX}", details={"field": "path", "encoding": "unknown"}) from None
    else:
        text = _strict(name, data, encoding)
    if bad := _binary(text, encoding):
        raise DomainError("invalid_argument", f"{name} holds control character U+{ord(bad.group()):04X} at character "
                          f"{bad.start()} when read as {encoding}: it is a binary file, or text in an encoding not "
                          f"recognised. Nothing was stored; if it is text, {FIX}", details={"field": "path", "encoding": encoding})
    return text


def _binary(text: str, encoding: str) -> re.Match[str] | None:
    """The control character that makes `text` binary, else None: a NUL anywhere; in text read as Windows-1252
    (a guess) any control character; in text its bytes declared or validated (UTF-8, a BOM, a charset) more
    than one in a hundred characters — a log's ANSI colour codes (ESC) or a stray bell stay as written."""
    if (nul := text.find("\x00")) >= 0:
        return _CONTROL.search(text, nul)
    found = _CONTROL.search(text)
    if found is None or encoding == "cp1252":
        return found
    return found if len(_CONTROL.findall(text)) * 100 > len(text) else None


def _sniff(data: bytes, html: bool) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    if b"\x00" in data[:4096]:
        head = data[:4096]
        pairs = len(head) // 2 or 1
        if head[1::2].count(0) > pairs * 0.3 and head[0::2].count(0) < pairs * 0.05:
            return "utf-16-le"
        if head[0::2].count(0) > pairs * 0.3 and head[1::2].count(0) < pairs * 0.05:
            return "utf-16-be"
        return None  # NULs with no pattern: refused below as binary
    if html and (found := _META_CHARSET.search(data[:2048])):
        try:
            return codecs.lookup(found.group(1).decode("ascii")).name
        except LookupError:
            return None
    return None


def _strict(name: str, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DomainError("invalid_argument", f"{name} is not valid {encoding} (bytes at offset {exc.start}). Nothing was "
                          f"stored; {FIX}", details={"field": "path", "encoding": encoding}) from None
