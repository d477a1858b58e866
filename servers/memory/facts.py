"""When a new statement is the same fact as a stored memory, and how two memories' fields merge.

A statement is read as a *frame* (subject + predicate, e.g. "the weekly standup is on") and a
*value* (what follows). The rule (`best_match`), applied within one scope to the stored memories
nearest in meaning, nearest first; leading cue words ("Actually,", "Correction:") are ignored when
comparing:

- **exact**: the same text once case, spacing and a final `.`/`!` are ignored. Nothing new to store.
- **edited**: the same frame with a new value. Both start with the same subject (with a phrase that names
  which one: "the office in Berlin", "the 1:1 with Alice", "the code for door 1") and verb, the words
  they share at the start and end are at least half of the stored statement, cosine >= `EDIT_COSINE`,
  and what differs is
  * only values: numbers, times, dates, weekdays, months, durations, amounts, codes with digits, or
    capitalized names/places ("lives in Lisbon" -> "lives in Porto", "manager is Eve" -> "Frank"),
    with the small words between them ("Monday at 10am" -> "Tuesday at 11am"); or
  * an appended extension or a cut tail ("peanuts" -> "peanuts and tree nuts"); or
  * the whole complement of an attribute ("The wifi password is hunter2" -> "... is swordfish"):
    the subject starts with "the"/"my"/... or is possessive ("Carol's"), the verb is a form of "be",
    and neither side starts with a different preposition.
  A changed verb or predicate is a different fact ("Carol lives in Lisbon" / "Carol works in
  Lisbon"; "Carol's manager is Eve" / "Carol's dentist is Eve"), and so is a changed common word
  after a verb that takes several objects: a person can like tea and coffee, speak French and
  German, be allergic to peanuts and cats (`MULTI_VERBS`; names after them do not count as values).
- **restated**: the same fact in other words: the same subject, the same content words once small
  words and word endings are ignored ("tea over coffee" / "tea to coffee"), cosine >= `RESTATE_COSINE`.
- **corrected**: the new statement carries a correction cue (`CUES`: "actually", "correction",
  "now", "no longer", "moved to", "changed to", "instead", ...) and has the same subject (the
  leading noun phrase: "the weekly standup", "Frank", "Carol's manager") as a stored memory with
  cosine >= `CUE_COSINE`: it replaces that memory even in other words ("Frank lives in Berlin" ->
  "Frank moved to Munich"; "Ivan likes tea" -> "Actually, Ivan likes coffee instead"). Among several,
  the one with the same verb wins, then the nearest.

Anything else is a new memory. The text stored is always the text sent (a cue word is kept). Known
limits: a place or name written in lower case is not taken for a value; a correction that names its
subject differently ("the standup" for "the weekly standup") is not found. `remember(as_new=true)`
stores a statement on its own whatever the rule says (except the same text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from servers.memory.model import nfc

EDIT_COSINE = 0.60
RESTATE_COSINE = 0.80
CUE_COSINE = 0.60
FLOOR = min(EDIT_COSINE, RESTATE_COSINE, CUE_COSINE)
Match = Literal["exact", "edited", "restated", "corrected"]

_TOKEN = re.compile(r"\w+", re.UNICODE)
CUES = re.compile(r"\b(actually|correction|corrected|now|no longer|not anymore|anymore|moved to|moved|changed to|changed|"
                  r"instead|rescheduled|switched to|updated)\b", re.IGNORECASE)
_LEAD_CUES = {"actually", "correction", "corrected", "update", "updated", "sorry", "oh", "well", "instead", "now", "so", "ok", "okay"}
_DETERMINERS = {"the", "a", "an", "our", "my", "your", "his", "her", "their", "its", "this", "that"}
_BE = {"is", "are", "was", "were", "be", "been"}
_PREPOSITIONS = {"on", "at", "in", "to", "for", "from", "by", "of", "with", "until", "till", "after", "before", "within",
                 "into", "per", "every", "each", "over", "under", "near", "about", "around", "between"}
_SMALL = _PREPOSITIONS | _DETERMINERS | {"and", "or", "&", "also", "then", "as", "than"}
_IDENTIFYING = {"in", "for", "with", "to", "of", "from", "by", "near", "into", "at", "on"}
"""Prepositions whose phrase may name which thing a subject is ("the office in Berlin", "the shop on Main Street");
a weekday, month, time or number after them is a value, not a name ("the standup on Monday")."""
MULTI_VERBS = {"like", "likes", "love", "loves", "enjoy", "enjoys", "speak", "speaks", "play", "plays", "know", "knows", "own",
               "owns", "has", "have", "visited", "visits", "hate", "hates", "dislike", "dislikes", "drink", "drinks", "eat", "eats",
               "use", "uses", "read", "reads", "watch", "watches", "follow", "follows", "support", "supports", "allergic",
               "prefer", "prefers", "collect", "collects", "study", "studies", "learn", "learns", "want", "wants", "need", "needs"}
_VERBS = _BE | MULTI_VERBS | {"has", "have", "had", "will", "would", "can", "could", "should", "must", "may", "do", "does", "did",
                              "lives", "live", "works", "work", "opens", "closes", "starts", "begins", "ends", "lasts", "costs",
                              "runs", "meets", "takes", "reports", "leads", "manages", "goes", "stays", "moves", "happens",
                              "no", "not", "never", "now", "longer", "instead", "actually"} | _PREPOSITIONS
_VALUE_WORDS = {
    "mon", "tue", "tues", "wed", "weds", "thu", "thur", "thurs", "fri",  # not "sat", "sun": names too (The Sun)
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mondays", "tuesdays", "wednesdays",
    "thursdays", "fridays", "saturdays", "sundays", "weekday", "weekdays", "weekend", "weekends",
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "am", "pm", "noon", "midnight", "morning", "afternoon", "evening", "night", "today", "tomorrow", "yesterday",
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months", "year", "years",
    "daily", "weekly", "biweekly", "fortnightly", "monthly", "quarterly", "yearly", "annually",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "ninety", "hundred", "thousand", "million", "half", "quarter", "dozen",
    "first", "third", "fourth", "fifth", "last", "next", "euro", "euros", "dollar", "dollars", "eur", "usd", "gbp",
    "percent", "km", "kg", "h", "min", "o", "clock", "utc", "cet", "cest", "gmt",
}


class _Statement:
    """A statement's tokens (lower case, cue words at the start dropped) and which were capitalized."""

    def __init__(self, text: str) -> None:
        found = [(m.group().lower(), m.group()[:1].isupper()) for m in _TOKEN.finditer(text)]
        while found and found[0][0] in _LEAD_CUES:
            found.pop(0)
        self.words = [w for w, _ in found]
        self.capital = [c for _, c in found]
        self.cue = CUES.search(text) is not None

    def subject(self) -> tuple[str, ...]:
        """The leading noun phrase: words up to the first verb, preposition or cue (at most 4), no article. A phrase
        that names which one ("the office in Berlin", "the 1:1 with Alice", "the code for door 1") is part of it:
        a fact about another office is no new value of this one's (outside review r38b #1)."""
        start = 1 if self.words and self.words[0] in _DETERMINERS else 0
        out: list[str] = []
        i = start
        while i < len(self.words):
            if out and self._ends_subject(i):
                naming = self._naming_phrase(i) if self.words[i] in _IDENTIFYING else 0
                if not naming:
                    break
                out.extend(self.words[i:i + naming])
                i += naming
                continue
            out.append(self.words[i])
            i += 1
            if len(out) >= 4:
                break
        return tuple(out)

    def _ends_subject(self, i: int) -> bool:
        word = self.words[i]
        return word in _VERBS or (word.endswith("ed") and len(word) > 3) or \
            (word.endswith("s") and self.capital[i - 1] and not self.capital[i] and word != "s")

    def _naming_phrase(self, i: int) -> int:
        """How many words from the preposition at `i` name which thing the subject is: the preposition and up to
        three words before the next verb or preposition, when one is a name (capitalized, not a weekday or month)
        or a number after a noun ("door 1"); 0 when they do not (a time, a place in lower case)."""
        end = i + 1
        while end < len(self.words) and end - i <= 3 and not self._ends_subject(end):
            end += 1
        phrase = range(i + 1, end)
        named = any((self.capital[j] and self.words[j] not in _VALUE_WORDS)
                    or (self.words[j].isdigit() and j > i + 1 and self.words[j - 1] not in _SMALL | _VALUE_WORDS
                        and not (self.words[i] == "at" and self._clock(j)))  # "door 1", "in 3.11" name; "at 9:30" a time
                    for j in phrase)
        return end - i if named else 0

    def _clock(self, j: int) -> bool:
        """Whether words `j-1`, `j` are the hours and minutes of a time ("9:30", read as 9 and 30): two numbers alone,
        the first at most 24, the second of two digits at most 59."""
        w = self.words
        return (j >= 1 and w[j - 1].isdigit() and int(w[j - 1]) <= 24 and len(w[j]) == 2 and int(w[j]) <= 59
                and not (j >= 2 and w[j - 2].isdigit()) and not (j + 1 < len(w) and w[j + 1].isdigit()))

    def verb(self) -> str | None:
        """The word after the subject (skipping cue words), for preferring a correction of the same verb."""
        rest = [w for w in self.words[len(self.subject()) + (1 if self.words and self.words[0] in _DETERMINERS else 0):]
                if w not in {"now", "no", "longer", "actually", "instead", "also"}]
        return rest[0] if rest else None

    def is_attribute(self) -> bool:
        return bool(self.words) and (self.words[0] in _DETERMINERS or (len(self.words) > 1 and self.words[1] == "s"))


def normal(text: str) -> str:
    """The key that finds an exact duplicate: NFC (equivalent Unicode spellings are one text), lower case,
    single spaces, no final `.` or `!`. Whether a duplicate that differs in letter case is new text: `recased`."""
    return _spelling(text).lower()


def _spelling(text: str) -> str:
    return " ".join(nfc(text).split()).rstrip(".!").rstrip()


def recased(stored: str, new: str) -> bool:
    """Whether `new`, the same text as `stored` but for letter case (same `normal`), corrects it.

    Decision (outside reviews writes28 #9 and w28b #4): case is part of a value where it can carry meaning —
    a word with a digit or a symbol inside it (a code, a serial, a password: hunter2 → HUNTER2, ab-12 → AB-12),
    a word the new text writes in mixed case (Mcdonald → McDonald, swordfish → SwordFish), or any word of a
    statement that names a secret or code (`_SECRET_CUES`: password, pin, code, key, token…: swordfish →
    SWORDFISH, ABCD → abcd). Otherwise re-capitalising a first letter, writing a word in all capitals or in lower
    case is how a statement is typed, not what it says: the stored text stays (`unchanged`, with `stored_text`;
    `update_memory` stores exact case)."""
    cued = any(w.strip(_EDGE).lower() in _SECRET_CUES for w in _spelling(new).split())
    for old_word, new_word in zip(_spelling(stored).split(), _spelling(new).split(), strict=False):
        if old_word == new_word:
            continue
        if cued:
            return True
        parts = [p for p in _JOINERS.split(new_word.strip(_EDGE)) if p]  # "Carol's", "x-ray": words, not codes
        if any(not c.isalpha() for p in parts for c in p) or any(p[1:] != p[1:].lower() and p != p.upper() for p in parts):
            return True
    return False


_SECRET_CUES = frozenset({"password", "passwords", "passphrase", "passcode", "pin", "code", "codes", "key", "keys",
                          "token", "secret", "username", "login", "serial", "licence", "license", "ssid"})
_EDGE = "\"'()[]{}<>.,;:!?“”‘’«»"
_JOINERS = re.compile(r"['’-]")


def words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _is_value(word: str, capital: bool) -> bool:
    return capital or any(c.isdigit() for c in word) or word in _VALUE_WORDS


def _only_values(side: list[tuple[str, bool]], names: bool) -> bool:
    """Whether a differing stretch is made of values (and small words between them), with at least one value."""
    values = [(w, c) for w, c in side if w not in _SMALL]
    return bool(values) and all(_is_value(w, c and names) for w, c in values)


def _edited(old: _Statement, new: _Statement) -> bool:
    o, n = old.words, new.words
    shared = 0
    while shared < min(len(o), len(n)) and o[shared] == n[shared]:
        shared += 1
    tail = 0
    while tail < min(len(o), len(n)) - shared and o[-1 - tail] == n[-1 - tail]:
        tail += 1
    frame = len(old.subject()) + (1 if o and o[0] in _DETERMINERS else 0)
    if shared <= frame or 2 * (shared + tail) < len(o):
        return False  # the subject and its verb must be the same, and most of the statement
    old_mid = list(zip(o[shared:len(o) - tail], old.capital[shared:len(o) - tail], strict=True))
    new_mid = list(zip(n[shared:len(n) - tail], new.capital[shared:len(n) - tail], strict=True))
    if not old_mid or not new_mid:
        return True  # an appended extension, or a cut tail
    verb = next((w for w in reversed(o[:shared]) if w not in _SMALL), "")
    names = verb not in MULTI_VERBS
    if _only_values(old_mid, names) and _only_values(new_mid, names):
        return True
    first_old, first_new = old_mid[0][0], new_mid[0][0]
    same_shape = (first_old in _PREPOSITIONS) == (first_new in _PREPOSITIONS) and (
        first_old not in _PREPOSITIONS or first_old == first_new)
    return o[shared - 1] in _BE and old.is_attribute() and same_shape and verb not in MULTI_VERBS


def _stems(statement: _Statement) -> set[str]:
    return {w[:5] for w in statement.words if w not in _SMALL and w not in _BE and w not in {"has", "have", "had"}}


def same_fact(stored: str, new: str, cosine: float, *, exact_only: bool = False) -> Match | None:
    """Whether `new` states the same fact as `stored` (see the module docstring), and why."""
    if normal(stored) == normal(new):
        return "exact"
    if exact_only:
        return None
    old, fresh = _Statement(stored), _Statement(new)
    if not old.words or not fresh.words:
        return None
    if cosine >= EDIT_COSINE and _edited(old, fresh):
        return "edited"
    if cosine >= RESTATE_COSINE and old.subject() == fresh.subject() and _stems(old) == _stems(fresh):
        return "restated"
    if fresh.cue and cosine >= CUE_COSINE and old.subject() == fresh.subject():
        return "corrected"
    return None


def best_match(new: str, candidates: Sequence[tuple[str, float]], *, exact_only: bool = False) -> tuple[int, Match] | None:
    """Which of the stored statements (text, cosine; nearest first) `new` updates, if any: the first
    exact, edited or restated one; else, for a correction, the same subject with the same verb, then the nearest."""
    corrections: list[tuple[bool, float, int]] = []
    verb = _Statement(new).verb()
    for index, (stored, cosine) in enumerate(candidates):
        match = same_fact(stored, new, cosine, exact_only=exact_only)
        if match == "corrected":
            corrections.append((_Statement(stored).verb() == verb, cosine, index))
        elif match is not None:
            return index, match
    if corrections:
        return max(corrections)[2], "corrected"
    return None


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` applied to `target` as a JSON merge patch (RFC 7396): objects merge key by key,
    `null` removes a key, anything else (lists too) replaces the value."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        elif isinstance(value, dict):
            merged[key] = merge_patch({}, value)
        else:
            merged[key] = value
    return merged
