"""Unicode script facts that keyword search needs, shared by tool search (`hub.search.words`) and the
memory domain's FTS5 text (`servers.memory.words`), so both split and fold words alike.

- Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, Han with its extension
  planes, kana, Hangul syllables): a run of them is one "word" to a space-based splitter, so no word
  inside it could be found (outside reviews search19 #6, memory26 D3); `split_unspaced` cuts such runs
  out of a mixed word and `char_pairs` gives the overlapping character pairs keyword search indexes.
- Accents people drop when they type: an accented Latin, Greek or Cyrillic word is also indexed and
  asked in its `unaccented` form; a mark in any other script is part of the letter, not an accent.
"""

from __future__ import annotations

import re
import unicodedata

UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"  # Thai, Lao, Myanmar, Khmer
            "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7af"
            "\U00020000-\U0003134f")
"""A regex class body: the scripts written without spaces between words."""
UNSPACED_RUN = re.compile(f"[{UNSPACED}]+")
LATIN_END = "\u0370"
"""Latin letters lie below U+0370."""
ACCENTED_SCRIPTS_END = "\u0530"
"""Latin, Greek and Cyrillic (below U+0530) are the scripts whose accents people drop when they type."""


def is_unspaced(word: str) -> bool:
    """Whether `word` is wholly of scripts written without spaces."""
    return bool(UNSPACED_RUN.fullmatch(word))


def split_unspaced(run: str) -> list[str]:
    """`run` cut where a script without spaces starts or stops (`api接口` → `api`, `接口`)."""
    if not UNSPACED_RUN.search(run):
        return [run]
    parts: list[str] = []
    last = 0
    for match in UNSPACED_RUN.finditer(run):
        parts.extend(p for p in (run[last:match.start()], match.group()) if p)
        last = match.end()
    if run[last:]:
        parts.append(run[last:])
    return parts


def char_pairs(run: str) -> list[str]:
    """An unspaced run as keyword search indexes it: its overlapping character pairs (a lone character
    stays itself)."""
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def unaccented(word: str, *, latin: bool = True) -> str:
    """`löschen` → `loschen`, `ελλάδα` → `ελλαδα`, `ёлка` → `елка`: the word without its accents, for a Latin
    (unless `latin` is False: a tokenizer that folds Latin itself), Greek or Cyrillic word; any other word as it is."""
    if word.isascii() or max(word) >= ACCENTED_SCRIPTS_END or (not latin and max(word) < LATIN_END):
        return word
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn"))
