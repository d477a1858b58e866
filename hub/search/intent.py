"""Query-side signals that do not depend on shared words: read-vs-write intent and id shapes.

- **Intent.** A request that asks ("is anyone out", "show", "which invoices") wants a tool that
  reads; one that orders ("book", "cancel", "mark … as done") wants one that writes. A query's
  intent is read from its first verb after polite filler ("can you", "please", "I need to"); a
  tool's from its `readOnlyHint`, else from its name's verb (`get_`, `list_`, … read).
  Unknown on either side means no signal.
- **Telling someone** (review search15 #7): "tell the ops channel that the deploy is done", "let the
  team know in #ops…", "notify/ping/message/inform <someone>…" are orders that create (a message
  is sent), not questions. Only "tell me/us …" and "let me/us know …" ask ("tell me who is out"):
  there the caller is the one told. "let <someone> know" counts when "know" follows within
  `_LET_KNOW_SPAN` words of "let".
- **A tool name's verb** (review console7 #4) is its first word that is a tool verb, wherever it
  stands: many servers put the product first (`slack_post_message`, `stripe_delete_refund`) or the
  noun (`file_delete`). A verb that is as often a noun (`_NOUN_LIKE`: `post`, `log`, `file`, `set`…)
  counts after the first word only when another word follows (`slack_post_message`, not
  `blog_post`), and as the first word it yields to a later verb that is not one (`audit_log_search`
  reads). Intent, the kind of write and the one-record test (`hub.search.specific`) read this verb.
- **Shapes.** Tokens such as `OPS-12`, `INV-0001`, `ada@example.com` or `#42` say which kind of
  value the user holds. They become pseudo-terms (`⟨key⟩`, `⟨email⟩`, …) on the query side and,
  on the tool side, in the parameter field wherever a parameter's name or description shows that
  shape (an example such as "e.g. OPS-12", or a name ending in `email`), so BM25F matches them
  like any other word.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import mcp_types as types

Intent = Literal["read", "write"] | None

_FILLER = frozenset(
    """can could would will you please pls kindly i i'd we need want to like help me us let let's lets just quickly
    go ahead and also hey hi ok okay so now then""".split()
)
READ_VERBS = frozenset(
    """who what which when where whose why how is are was were do does did has have any anyone anybody anything
    show list find search look lookup pull see check get read tell give display view fetch whats what's who's
    how's is there are there am count browse print return""".split()
)
WRITE_VERBS = frozenset(
    """create add book schedule reschedule cancel delete remove update change rename move mark set assign unassign
    close resolve reopen approve decline accept reject deny send post file open log submit request invite record
    remember forget ingest link connect escalate bump push pencil invoice correct edit write comment reply
    transition merge upload archive store save note make put register start stop pause finish complete enter
    attach block relate reassign respond rsvp void pay refund issue draft raise tag label keep memorize drop
    erase clear wipe tidy fix replace import scrap shift postpone extend amend patch purge tweak adjust switch jot
    reclassify reclass rotate""".split()
)
AMBIGUOUS_VERBS = frozenset(
    "open file log issue note request record schedule book set tag label link comment invoice draft store "
    "report block change pay time order".split()
)
"""Words that are as often nouns or adjectives ("open tickets", "report on Q3"): they count as an
order unless the query ends there or a plural noun or a preposition follows them."""
_NOUN_FOLLOWERS = frozenset("on for of about in from to with by off at per and or".split())
_NOT_PLURAL = frozenset("this his us is was its as yes".split())
_READ_TOOL_VERBS = frozenset(
    "get list search find read lookup look query fetch show view whos check describe count browse recall now "
    "graph preview download export".split()
)
_WORD = re.compile(r"[a-z0-9'’]+")
_PHRASAL = [(re.compile(rf"\b{a}\b"), b) for a, b in (
    ("get rid of", "delete"), ("call off", "cancel"), ("take out", "remove"), ("set up", "create"),
    ("pencil in", "book"), ("put off", "postpone"), ("push back", "postpone"), ("sign off on", "approve"),
    ("keep in mind", "remember"), ("bear in mind", "remember"), ("note down", "note"), ("write down", "note"),
)]
"""Multi-word verbs read as the one verb they mean ("get rid of X" orders a delete, not a read)."""


def _words(query: str) -> list[str]:
    text = query.lower().replace("’", "'")
    for pattern, verb in _PHRASAL:
        text = pattern.sub(verb, text)
    return _WORD.findall(text)


_TELL_VERBS = frozenset("tell notify ping message inform".split())
"""Verbs that order a message sent to someone other than the caller."""
_TOLD_CALLER = frozenset("me us myself ourselves".split())
_LET_KNOW_SPAN = 5
"""At most this many words between "let" and "know" in "let the on-call team know"."""


def _tells_someone(words: list[str], i: int) -> bool | None:
    """At `words[i]`: True for an order to tell someone else ("tell the team", "let Ana know"), False for
    "tell me/us" / "let me/us know" (a question), None when the word is no telling."""
    word = words[i]
    after = words[i + 1] if i + 1 < len(words) else ""
    if word in _TELL_VERBS:
        if word == "tell":
            return after not in _TOLD_CALLER if after else None
        return bool(after) and after not in _TOLD_CALLER and after not in _NOUN_FOLLOWERS
    if word == "let" and "know" in words[i + 2:i + 2 + _LET_KNOW_SPAN]:
        return after not in _TOLD_CALLER
    return None


def query_intent(query: str) -> Intent:
    """`read`, `write` or None from the first meaningful word of `query` (a trailing "?" reads).

    An order word that is often a noun (`AMBIGUOUS_VERBS`) does not count before a plural noun or a
    preposition ("open tickets", "report on Q3"). Telling someone other than the caller is an order
    (`_tells_someone`)."""
    words = _words(query)
    for i, word in enumerate(words):
        told = _tells_someone(words, i)
        if told is not None:
            return "write" if told else "read"
        if word in _FILLER:
            continue
        if word in AMBIGUOUS_VERBS:
            after = words[i + 1] if i + 1 < len(words) else ""
            plural = len(after) > 3 and after.endswith("s") and not after.endswith("ss") and after not in _NOT_PLURAL
            if not after or after in _NOUN_FOLLOWERS or plural:
                break
            return "write"
        if word in WRITE_VERBS:
            return "write"
        if word in READ_VERBS:
            return "read"
        break
    return "read" if query.rstrip().endswith("?") else None


def tool_intent(tool: types.Tool, original: str) -> Intent:
    """`read` for a read-only tool, `write` for one that is not; by its name's verb when unannotated
    (a name with no verb of `_READ_TOOL_VERBS` writes)."""
    hint = tool.annotations.read_only_hint if tool.annotations else None
    if hint is not None:
        return "read" if hint else "write"
    if not name_parts(original):
        return None
    verb = name_verb(original)
    return "read" if verb is not None and verb[1] in _READ_TOOL_VERBS else "write"


SHAPES: dict[str, re.Pattern[str]] = {
    "⟨email⟩": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "⟨key⟩": re.compile(r"\b[A-Za-z][A-Za-z0-9]{1,9}-\d+\b"),
    "⟨url⟩": re.compile(r"\bhttps?://\S+"),
}
"""Value shapes worth recognising in a query, each with its pseudo-term."""

_PARAM_SHAPE_NAMES: dict[str, tuple[str, ...]] = {
    "⟨email⟩": ("email", "emails", "mail_address"),
    "⟨url⟩": ("url", "uri", "link_url"),
}


def query_shapes(query: str) -> list[str]:
    """The pseudo-terms of the value shapes `query` contains (each once)."""
    return [term for term, pattern in SHAPES.items() if pattern.search(query)]


def param_shapes(schema: dict[str, Any] | None) -> list[str]:
    """Pseudo-terms for the shapes a tool's parameters take: shown in a description, or by name."""
    props = (schema or {}).get("properties") or {}
    found: list[str] = []
    for name, spec in props.items():
        text = str((spec or {}).get("description") or "") if isinstance(spec, dict) else ""
        for term, pattern in SHAPES.items():
            named = str(name).lower().endswith(_PARAM_SHAPE_NAMES.get(term, ()))
            if (named or pattern.search(text)) and term not in found:
                found.append(term)
    return found


Action = Literal["create", "update", "delete"] | None

_QUERY_ACTIONS: dict[str, Action] = {
    **dict.fromkeys("""create add book schedule pencil log file open raise submit make new put register record
    remember keep save store memorize invite enter draft ingest upload note jot post request insert refund""".split(),
                     "create"),
    **dict.fromkeys("reclass reclassify".split(), "create"),
    **dict.fromkeys("""update change rename move push reschedule edit correct modify shift bump postpone extend fix
    replace reassign adjust tweak switch amend patch rotate""".split(), "update"),
    **dict.fromkeys("delete cancel remove drop erase forget clear wipe void scrap purge".split(), "delete"),
}
_TOOL_ACTIONS: dict[str, Action] = {
    **dict.fromkeys("create add new book schedule post submit record log file open raise request ingest upload "
                    "remember invite insert register make refund send".split(), "create"),
    **dict.fromkeys("update edit set change rename move modify patch transition reschedule upsert correct".split(), "update"),
    **dict.fromkeys("delete remove cancel void forget archive erase drop purge".split(), "delete"),
}


_TOOL_VERBS = _READ_TOOL_VERBS | _TOOL_ACTIONS.keys()
_NOUN_LIKE = frozenset(
    "new book schedule post record log file request open set change archive query view check count graph now "
    "preview export read".split()
)
"""Tool verbs that are as often nouns or participles (`blog_post`, `audit_log_search`, `mark_as_read`)."""
_NAME_PARTS = re.compile(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])")


def name_parts(original: str) -> list[str]:
    """A tool name's words, lower case: `slack_postMessage` → `slack post message`."""
    return [p.lower() for p in _NAME_PARTS.split(original.strip("_")) if p]


def name_verb(original: str) -> tuple[int, str] | None:
    """(position, word) of the action word of a tool's name, wherever it stands (module docstring):
    `create_refund`, `stripe_create_refund`, `refund_create` → create; None when the name has none."""
    parts = name_parts(original)
    found = [(i, p) for i, p in enumerate(parts)
             if p in _TOOL_VERBS and (i == 0 or i < len(parts) - 1 or p not in _NOUN_LIKE)]
    if not found:
        return None
    if found[0][1] in _NOUN_LIKE:
        return next((f for f in found[1:] if f[1] not in _NOUN_LIKE), found[0])
    return found[0]


def query_action(query: str) -> Action:
    """Which kind of write an order asks for (`create`, `update`, `delete`), from the same first word as
    `query_intent`; None for a question, or an order of another kind."""
    if query_intent(query) != "write":
        return None
    words = _words(query)
    for i, word in enumerate(words):
        if _tells_someone(words, i):
            return "create"
        if word not in _FILLER:
            return _QUERY_ACTIONS.get(word)
    return None


def tool_action(original: str) -> Action:
    """The kind of write a tool's name says by its verb (`create_event`, `calendar_create_event` → create)."""
    verb = name_verb(original)
    return _TOOL_ACTIONS.get(verb[1]) if verb is not None else None

