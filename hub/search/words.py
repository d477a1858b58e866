"""Words for tool search: identifiers split into parts, a light stemmer, stop words and synonyms.

`terms(text)` is what both the index and a query go through, so `search_tickets`,
`searchTickets` and "search tickets" all become `search ticket`. The stemmer only folds the
endings that separate a tool's words from a user's (plural, -ing, -ed); the synonym table maps
everyday words onto the words tools tend to use ("vacation" → "time off", "bill" → "invoice").
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from hub.text.scripts import char_pairs, is_unspaced, split_unspaced, unaccented

MAX_WORD_CHARS = 64
"""A longer word (a hex key, a base64 blob) is cut to its first 64 characters, in tool text and query alike,
so no single word costs more than that to stem, cache or index (`hub.search.documents` caps the texts)."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")


def _is_word_char(char: str, in_word: bool) -> bool:
    """A letter or digit of any script; a combining mark only inside a word (Thai vowels, Devanagari matras)."""
    return char.isalnum() or (in_word and unicodedata.category(char)[0] == "M")


def _runs(text: str) -> list[str]:
    """The `\\w+` runs of `text` over all scripts, each with its combining marks (Python's `\\w` has no marks)."""
    runs: list[str] = []
    start = -1
    for i, char in enumerate(text):
        if _is_word_char(char, start >= 0):
            if start < 0:
                start = i
        elif start >= 0:
            runs.append(text[start:i])
            start = -1
    if start >= 0:
        runs.append(text[start:])
    return runs


def _words(text: str) -> list[str]:
    """The words of `text` in every script, NFKC-normalised (full-width `ｓｅｎｄ` is `send`) and case-folded.

    A run of a script written without spaces (CJK, Thai and its neighbours) becomes its overlapping character
    pairs (a lone character stays itself), the usual keyword answer for such text (outside review search19 #6:
    a whole Chinese clause was one term). An accented Latin, Greek or Cyrillic word also counts in its
    unaccented form (`hub.text.scripts.unaccented`). Before, only `[a-z0-9]` and CJK made terms, so Russian, Greek, Thai and
    full-width Latin gave none and "löschen" was cut at its accent (outside review recheck21h #5). Tool text
    and queries go through the same split."""
    text = unicodedata.normalize("NFKC", text)
    text = _AMPERSAND.sub(r"\1\2", split_identifier(text).casefold())
    out: list[str] = []
    for run in _runs(text):
        for part in split_unspaced(run):
            if is_unspaced(part):
                out.extend(char_pairs(part))
                continue
            word = part[:MAX_WORD_CHARS]
            out.append(word)
            plain = unaccented(word)
            if plain != word:
                out.append(plain)
    return out


STOP_WORDS = frozenset(
    """a an and are as at be been by can could did do does for from had has have how i i'd i'm in into is it
    its me my of on or our please some that the their them then there these this those to us was we were
    what when where which who whom will with would you your want need let lets just also any all get
    show give tell find next last week weeks month months monday tuesday wednesday thursday friday saturday
    sunday morning afternoon evening tonight tomorrow yesterday""".split()
)
"""Words that say nothing about which tool is meant. `get`, `show`, `find`, `list` are kept out of
queries only where they are filler: `get`, `find`, `show`, `give` and `tell` are dropped, `list` and
`search` are kept (they separate `list_events` from `get_event`)."""

SYNONYMS: dict[str, tuple[str, ...]] = {
    "vacation": ("time", "off", "leave"), "holiday": ("time", "off", "leave"), "pto": ("time", "off"),
    "leave": ("time", "off"), "absence": ("time", "off", "out"), "absent": ("out",), "sick": ("time", "off"),
    "away": ("out",), "ooo": ("out",),
    "bill": ("invoice",), "receipt": ("payment",), "paid": ("payment",), "pay": ("payment",),
    "customer": ("contact",), "vendor": ("contact",), "supplier": ("contact",), "client": ("contact",),
    "meeting": ("event",), "appointment": ("event",), "call": ("event",), "invite": ("event", "invitation"),
    "invitation": ("event",), "rsvp": ("respond",), "accept": ("respond",), "decline": ("respond",),
    "free": ("available", "slot"), "availability": ("available", "free", "busy"), "slot": ("available",),
    "schedule": ("event", "calendar"), "reschedule": ("update", "event"), "cancel": ("delete",),
    "issue": ("ticket",), "bug": ("ticket",), "incident": ("ticket",), "task": ("ticket",),
    "note": ("comment", "memory"), "reply": ("comment",), "status": ("transition",),
    "colleague": ("employee",), "staff": ("employee",), "coworker": ("employee",), "worker": ("employee",),
    "person": ("employee", "user"), "people": ("employee", "user"), "team": ("department", "report"),
    "boss": ("manager", "chain"), "manager": ("report", "chain"), "hierarchy": ("org", "chart"),
    "remember": ("memory",), "recall": ("memory",), "memorize": ("remember",), "fact": ("memory",),
    "preference": ("memory",), "forget": ("delete",), "doc": ("document",), "file": ("document",),
    "kb": ("document",), "ledger": ("transaction", "journal"), "expense": ("transaction", "invoice"),
    "revenue": ("report", "profit"), "profit": ("report",), "balance": ("report", "balance"),
    "remove": ("delete",), "erase": ("delete",), "edit": ("update",), "change": ("update",),
    "modify": ("update",), "add": ("create",), "new": ("create",), "make": ("create",), "open": ("create",),
    "lookup": ("search",), "look": ("search",), "locate": ("search",), "query": ("search",),
    # Everyday nouns of each built-in domain's records (round 3): kinds of meeting, of leave, of money owed,
    # of trouble reported, of things kept in a knowledge base.
    "lunch": ("event", "meeting"), "sync": ("event", "meeting"), "standup": ("event", "meeting"),
    "catchup": ("event", "meeting"), "huddle": ("event", "meeting"), "interview": ("event", "meeting"),
    "offsite": ("event",), "agenda": ("event", "list"), "diary": ("calendar", "event"), "clash": ("busy", "event"),
    "directory": ("employee",), "headcount": ("department", "employee"), "role": ("title", "employee"),
    "position": ("title", "employee"), "hire": ("employee",), "allowance": ("balance",), "entitlement": ("balance",),
    "remaining": ("balance",), "owe": ("invoice", "aged", "payable"), "owed": ("invoice", "aged", "receivable"),
    "outstanding": ("invoice", "unpaid"), "unpaid": ("invoice",), "overdue": ("invoice",),
    "income": ("profit", "loss", "report"), "books": ("ledger", "account"), "charge": ("invoice",),
    "outage": ("ticket", "incident"), "broken": ("ticket", "bug"), "crash": ("ticket", "bug"),
    "problem": ("ticket",), "backlog": ("ticket", "search"), "queue": ("ticket",), "assignee": ("ticket",),
    "duplicate": ("link",), "blocker": ("link", "block"), "thread": ("comment",), "discussion": ("comment",),
    "told": ("memory", "recall"), "mentioned": ("memory", "recall"), "remind": ("memory", "recall"),
    "handbook": ("document",), "policy": ("document",), "wiki": ("document",), "manual": ("document",),
    "pdf": ("document",), "relationship": ("relation", "graph"), "entity": ("node", "graph"),
    # Shorthand people type (round 4).
    "pl": ("profit", "loss", "report"), "pnl": ("profit", "loss", "report"), "jira": ("ticket", "issue"),
    "dupe": ("duplicate", "link"), "reclass": ("journal", "entry", "account"), "ar": ("receivable", "aged"),
    "ap": ("payable", "aged"), "hr": ("employee",), "dm": ("message",), "eod": ("today",),
}
"""Everyday words → tool words. A synonym is added to the query with a lower weight, never
instead of the word (`hub.search.bm25`)."""


def split_identifier(text: str) -> str:
    """`ticketing__searchTickets-v2` → `ticketing search Tickets v2` (separators and camelCase)."""
    return _CAMEL.sub(" ", re.sub(r"[_\-./:]+", " ", text))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Fold plural and -ing/-ed endings: `tickets`→`ticket`, `entries`→`entry`, `booked`→`book`.

    A final silent `e` goes too (round 5), so `update`, `updated`, `updates` and `updating` all
    become `updat`: before, `changed` (`chang`) never met a tool's `change`."""
    base = _stem(word)
    return base[:-1] if len(base) > 4 and base.endswith("e") and not base.endswith("ee") else base


def _stem(word: str) -> str:
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ing") and len(word) > 5:
        base = word[:-3]
        return base[:-1] if len(base) > 2 and base[-1] == base[-2] and base[-1] not in "ls" else base
    if word.endswith("ed") and len(word) > 4 and not word.endswith("eed"):
        base = word[:-2]
        if base.endswith("i"):
            return base[:-1] + "y"
        return base[:-1] if len(base) > 2 and base[-1] == base[-2] and base[-1] not in "ls" else base
    if word.endswith("es") and word[-3] in "sxz" or word.endswith(("ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_AMPERSAND = re.compile(r"\b([a-z])&([a-z])\b")


def terms(text: str, drop_stop_words: bool = True) -> list[str]:
    """Stemmed lower-case words of `text`, identifiers split, stop words dropped (`P&L` is one word, `pl`)."""
    return [stem(w) for w in _words(text) if not (drop_stop_words and w in STOP_WORDS)]


def surface_words(text: str) -> dict[str, str]:
    """stem → the word as `text` wrote it (lower case), to show matches in the user's words."""
    words = _words(text)
    return {stem(w): w for w in reversed(words)}


def expansions(query_terms: list[str]) -> list[str]:
    """Tool words the query's everyday words stand for (stemmed, not already in the query)."""
    seen = set(query_terms)
    out: list[str] = []
    for term in query_terms:
        for synonym in SYNONYMS.get(term, ()):
            stemmed = stem(synonym)
            if stemmed not in seen:
                seen.add(stemmed)
                out.append(stemmed)
    return out


PHRASES: dict[str, tuple[str, ...]] = {
    "keep in mind": ("remember", "memory"), "bear in mind": ("remember", "memory"), "note down": ("remember",),
    "pencil in": ("create", "event"), "put on the calendar": ("create", "event"), "set up a": ("create",),
    "day off": ("time", "off"), "days off": ("time", "off"), "off sick": ("out", "time", "off"),
    "out sick": ("out", "time", "off"), "out of office": ("out",), "out of the office": ("out",),
    "push back": ("update", "reschedule"), "push it": ("update", "reschedule"), "move it": ("update",),
    "report to": ("manager", "org", "chart"), "reports to": ("manager", "org", "chart"),
    "who is on": ("out",), "sign off": ("approve",), "get rid of": ("delete",), "call off": ("cancel", "delete"),
    "what time": ("now",), "look up": ("search",), "look into": ("search",),
}
"""Everyday phrases → tool words, matched in the query's text (lower case); implied like `SYNONYMS`."""


def phrase_expansions(query: str, known: list[str]) -> list[str]:
    """Tool words implied by the everyday phrases in `query` (stemmed, not already in `known`)."""
    text = " ".join(_WORD.findall(query.lower()))
    seen = set(known)
    out: list[str] = []
    for phrase, words in PHRASES.items():
        if f" {phrase} " in f" {text} ":
            for word in words:
                stemmed = stem(word)
                if stemmed not in seen:
                    seen.add(stemmed)
                    out.append(stemmed)
    return out


def _stemmed_synonyms() -> dict[str, tuple[str, ...]]:
    return {stem(k): v for k, v in SYNONYMS.items()}


SYNONYMS.update({k: v for k, v in _stemmed_synonyms().items() if k not in SYNONYMS})
