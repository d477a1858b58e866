"""Words for the memory domain's keyword search (FTS5), split the same way in what is indexed and in what is asked.

FTS5's unicode61 tokenizer splits only at spaces and punctuation, so a run of a script written without spaces
(Chinese, Japanese, Thai, Lao, Khmer, Myanmar; Korean particles) was one token and no word inside it could be found:
keyword search for 大阪 missed "妹は大阪に住んでいます。" (outside review memory26 D3). Tool search solved the same
(hub/search/words.py, review search19 #6) with overlapping character pairs; this is that approach for FTS5:

- the text stored in an FTS table is `index_text(text)`: its words separated by spaces, NFKC-normalised and
  case-folded; a run of such a script becomes its overlapping character pairs, plus its last character alone,
  so that every character starts some token (a one-character query finds it as a prefix: `fts_term`);
- a query's words (`query_words`) are split the same way, but without the extra last characters;
- combining marks stay inside their word (Thai vowels, Devanagari matras), and the FTS tables count marks as
  word characters (`TOKENIZER`), so such a word is not cut at its marks;
- an accented Greek or Cyrillic word is also indexed and asked in its unaccented form; Latin accents are folded
  by the tokenizer itself (`remove_diacritics 2`), so `offnet` finds `öffnet` and the other way round.

The FTS tables hold this text only for matching and counting; what a search shows is read from the base tables.
"""

from __future__ import annotations

import re
import unicodedata

from hub.text.scripts import char_pairs, is_unspaced, split_unspaced, unaccented

TOKENIZER = "porter unicode61 remove_diacritics 2 categories 'L* N* Co M*'"
"""The FTS5 tokenizer of the memory tables: letters, digits and combining marks make words."""

MAX_WORD_CHARS = 64
"""A longer word (a hex key, a base64 blob) is cut to its first 64 characters, in text and query alike."""

def _marks() -> str:
    """Every combining mark (Unicode category M*) of the planes that have them, as a regex class body."""
    codes = [c for c in (*range(0x20000), *range(0xE0100, 0xE01F0)) if unicodedata.category(chr(c))[0] == "M"]
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_RUN = re.compile(f"\\w[\\w{_marks()}]*")
"""A letter or digit of any script, then letters, digits and combining marks (Python's `\\w` has no marks);
underscores are taken out before (`_runs`), as the tokenizer splits at them."""


def _runs(text: str) -> list[str]:
    """The word runs of `text` over all scripts, each with its combining marks."""
    return _RUN.findall(text.replace("_", " "))


def _words(text: str, indexing: bool) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    for run in _runs(text):
        if run.isascii():  # most words: no script to split, no accent to drop
            out.append(run[:MAX_WORD_CHARS])
            continue
        for part in split_unspaced(run):
            if is_unspaced(part):
                out.extend(char_pairs(part))
                if indexing and len(part) > 1:
                    out.append(part[-1])
                continue
            word = part[:MAX_WORD_CHARS]
            out.append(word)
            if (plain := unaccented(word, latin=False)) != word:  # the tokenizer folds Latin itself
                out.append(plain)
    return out


def query_words(text: str) -> list[str]:
    """The words of a query, in order, split as `index_text` splits what is indexed."""
    return _words(text, indexing=False)


def index_text(text: str | None) -> str:
    """The text an FTS table holds for `text`: its words (module docstring), separated by spaces."""
    return " ".join(_words(text or "", indexing=True))


def fts_term(word: str) -> str:
    """One word of `query_words` as an FTS5 query term that cannot be a syntax error: quoted; a lone character of
    a script without spaces as a prefix, so it matches the character pairs it starts."""
    return f'"{word}"*' if len(word) == 1 and is_unspaced(word) else f'"{word}"'
