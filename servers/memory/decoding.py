"""Turning a text or HTML file's bytes into text, or refusing it: never text with characters made up.

Decisions (outside reviews writes28 #8 and w28b #2, #3, #7):
- A byte-order mark decides: UTF-8 (with BOM), UTF-16 or UTF-32, little or big endian. UTF-16 without a BOM
  (NUL bytes at every other position, as in mostly-Latin text) is read as UTF-16.
- Otherwise valid UTF-8 wins, whatever an HTML page declares: a template's stale `charset=iso-8859-1` over
  UTF-8 bytes would only garble them.
- Bytes that are not valid UTF-8: an HTML `<meta charset>` (first 2 KB) is a hint, used when the bytes decode
  cleanly in it. Labels map as browsers do (WHATWG Encoding): iso-8859-1, latin1 and ascii mean Windows-1252,
  iso-8859-9 means Windows-1254, utf-16 in a meta means UTF-8 (the page was read as ASCII to find it).
- Mostly UTF-8 with stray bytes (a line pasted from an old Windows mail): refused, naming the line and byte
  offset of the first stray byte. It is never re-read whole as Windows-1252 (that turns every correctly
  encoded letter into mojibake), nor are the bytes replaced silently.
- Otherwise Windows-1252 (a superset of Latin-1's printable characters, what older Western-European files
  are), but only when the text reads as such: no run of 4 or more non-ASCII characters in a row that holds a
  letter (a Cyrillic, Greek, Chinese or Japanese code page read as Windows-1252 makes such runs of gibberish;
  a divider of dashes or bullets is punctuation only and stays).
- Control characters (`_binary`): a NUL refuses any file. In text whose encoding is Unicode (a BOM, UTF-8),
  C0 and C1 controls other than tab, newline, carriage return and form feed refuse it when they are more than
  1 in 100 characters, not counting ANSI colour/escape sequences (a coloured log is text). In a single-byte
  reading (Windows-1252, a declared code page) any such control refuses: it means the guess was wrong.
- Every refusal is `invalid_argument` saying where, and to save the file as UTF-8. Nothing is stored then.
"""

from __future__ import annotations

import codecs
import re

from servers.kit.errors import DomainError

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_FOREIGN_RUN = re.compile(r"[^\x00-\x7f]{4,}")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_WHATWG = {**dict.fromkeys(("ansi_x3.4-1968", "ascii", "us-ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
                            "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1",
                            "windows-1252", "x-cp1252"), "cp1252"),
           **dict.fromkeys(("iso-8859-9", "iso8859-9", "iso88599", "iso_8859-9", "l5", "latin5", "windows-1254"), "cp1254"),
           **dict.fromkeys(("utf-16", "utf-16le", "utf-16be", "unicode", "ucs-2", "unicodefffe"), "utf-8"),
           **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "ms_kanji", "windows-31j", "x-sjis"), "cp932"),
           **dict.fromkeys(("euc-kr", "ks_c_5601-1987", "windows-949"), "cp949"),
           **dict.fromkeys(("gb2312", "gbk", "x-gbk", "chinese"), "gb18030")}
_UNICODE = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32")
FIX = "save it as UTF-8 (in most editors: Save As, encoding UTF-8) and ingest it again"


def decode_text(name: str, data: bytes, html: bool = False) -> str:
    """The text of file `name` from its bytes, by the rules above; `invalid_argument` when it cannot be read."""
    encoding = _unicode_by_bytes(data)
    if encoding is not None:
        text = _strict(name, data, encoding)
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            text, encoding = _not_utf8(name, data, html, exc)
    if bad := _binary(text, encoding):
        raise DomainError("invalid_argument", f"{name} holds control character U+{ord(bad.group()):04X} at character "
                          f"{bad.start()} when read as {encoding}: it is a binary file, or text in an encoding not "
                          f"recognised. Nothing was stored; if it is text, {FIX}", details={"field": "path", "encoding": encoding})
    return text


def declared_charset(data: bytes) -> str | None:
    """The Python codec for an HTML page's `<meta charset>` (first 2 KB), mapped as browsers map labels; None
    when there is none or it is unknown."""
    if not (found := _META_CHARSET.search(data[:2048])):
        return None
    label = found.group(1).decode("ascii").lower()
    try:
        return _WHATWG.get(label) or codecs.lookup(label).name
    except LookupError:
        return None


def _not_utf8(name: str, data: bytes, html: bool, exc: UnicodeDecodeError) -> tuple[str, str]:
    """Text and encoding of bytes that are not valid UTF-8: a declared charset that reads them, else
    Windows-1252 when that reads as text; refused when mostly UTF-8 or in another code page."""
    if html and (declared := declared_charset(data)) and declared not in _UNICODE:
        try:
            return data.decode(declared), declared
        except UnicodeDecodeError:
            pass
    escaped = data.decode("utf-8", errors="surrogateescape")
    stray = sum(1 for ch in escaped if "\udc80" <= ch <= "\udcff")
    multibyte = sum(1 for ch in escaped if ch > "\x7f" and not "\udc80" <= ch <= "\udcff")
    line = data.count(b"\n", 0, exc.start) + 1
    where = f"line {line}, byte offset {exc.start}: 0x{data[exc.start]:02X}"
    if multibyte >= stray:
        raise DomainError("invalid_argument", f"{name} is UTF-8 except for {stray} byte(s) that are not (the first at "
                          f"{where}): it mixes encodings, e.g. a line pasted from a Windows-1252 file. Nothing was "
                          f"stored; fix or retype those characters, or {FIX}",
                          details={"field": "path", "encoding": "mixed", "offset": exc.start}) from None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = ""
    if not text or any(any(ch.isalpha() for ch in run.group()) for run in _FOREIGN_RUN.finditer(text)):
        raise DomainError("invalid_argument", f"{name} is not UTF-8 (invalid byte at {where}) and does not read as "
                          "Windows-1252/Latin-1 either: it is in another encoding, e.g. a Cyrillic or East Asian code "
                          f"page. Nothing was stored; {FIX}", details={"field": "path", "encoding": "unknown"}) from None
    return text, "cp1252"


def _binary(text: str, encoding: str) -> re.Match[str] | None:
    """The control character that makes `text` binary, else None (rules in the module docstring)."""
    if (nul := text.find("\x00")) >= 0:
        return _CONTROL.search(text, nul)
    found = _CONTROL.search(text)
    if found is None or encoding not in _UNICODE:
        return found
    plain = _ANSI.sub("", text)
    if len(_CONTROL.findall(plain)) * 100 <= len(text):
        return None
    return next((m for m in _CONTROL.finditer(text) if not _ANSI.match(text, m.start())), found)


def _unicode_by_bytes(data: bytes) -> str | None:
    """UTF-8/16/32 named by a byte-order mark, or UTF-16 by the NULs of mostly-Latin text; else None."""
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
    return None  # NULs with no pattern are refused later as binary


def _strict(name: str, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DomainError("invalid_argument", f"{name} is not valid {encoding} (bytes at offset {exc.start}). Nothing was "
                          f"stored; {FIX}", details={"field": "path", "encoding": encoding}) from None
