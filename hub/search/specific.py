"""One record by its id, or many by what they are: the get-vs-search signal (issue #20 round 5).

Sibling tools often split as "read one record whose id you know" (`get_invoice(invoice_id)`,
`get_employee(ref)`, `lookup_user_by_email(email)`) and "find records by what they are"
(`search_invoices(status, contact…)`, `search_employees(query, department…)`). Which one a request
wants is rarely in its words ("find the employee record for Grace Hopper" shares `employee` with
both) but often in its values: a request that names a record by an identifier (`INV-0042`,
`employee 17`, `#42`, an email address or a URL) wants the one-record tool; a request that holds
no identifier wants the finder. So:

- a tool **fetches one** when its name's verb (`hub.search.intent.name_verb`: `get_invoice`,
  `stripe_get_refund`) reads one (`get`, `read`, `fetch`, `lookup`, `describe`, `show`, `view`) and
  is not the name's last word, the last word of its name is singular, and its first parameter (or,
  when the schema lists required ones, its first required parameter) names a record: `id`, `ref`,
  `key`, `uuid`, `email`, `url`, or a name ending in `_id`, `_ref`, `_key`, `_number`, `_email`,
  `_url` (`get_metadata(project, ticket_id)` reads a configuration, not a record by id);
- a query **holds an identifier** when it has a key (`OPS-12`), an email address, a URL, `#42`,
  a prefixed id (`evt_77`, `cus_9f2a1`: letters, `_`, then a word with a digit), or a number of two or more digits right after a word that is not a preposition, a comparison, a
  month or a unit ("employee 17": yes; "over 5000", "March 12", "top 10", "3pm": no).

The index adds ±SPECIFIC_WEIGHT (`hub.search.index`) to the tools that fetch one: + when the query
holds an identifier, − when it holds none. Nothing changes for tools that do not fetch one.
"""

from __future__ import annotations

import re
from typing import Any

from hub.search.intent import SHAPES, name_parts, name_verb

_READ_ONE_VERBS = frozenset("get read fetch lookup describe show view".split())
_ID_NAMES = frozenset("id ref key uuid email url".split())
_ID_SUFFIXES = ("_id", "_ref", "_key", "_number", "_email", "_url", "_uuid", "Id", "Ref", "Key")
_NUMBER_AFTER = re.compile(r"([A-Za-z][A-Za-z']*)\s+#?(\d{2,})\b(?!\s*(?:%|am\b|pm\b|k\b|h\b|m\b|x\b|st\b|nd\b|rd\b|th\b))")
_TAGGED = re.compile(r"#\d+\b|\b[A-Za-z]{2,}_(?=\w*\d)\w+\b")
"""`#42`, or a prefixed id such as `evt_77` or `mem_0a1b`."""
_NOT_A_NOUN = frozenset(
    """over under above below than about around at by on in for to from of the a an last next past top first
    least most more less and or only after before since until till between within max min up down per each
    is are was were be every all jan january feb february mar march apr april may jun june jul july aug august
    sep sept september oct october nov november dec december q year years day days week weeks month months
    hour hours minute minutes usd eur gbp dollars euros pounds""".split()
)


def query_holds_id(query: str) -> bool:
    """True when `query` names a record by an identifier (see the module docstring)."""
    if any(pattern.search(query) for pattern in SHAPES.values()) or _TAGGED.search(query):
        return True
    return any(m.group(1).lower() not in _NOT_A_NOUN for m in _NUMBER_AFTER.finditer(query))


def fetches_one(original: str, schema: dict[str, Any] | None) -> bool:
    """True for a tool that reads one record by an identifier (see the module docstring)."""
    parts = name_parts(original)
    verb = name_verb(original)
    if verb is None or verb[1] not in _READ_ONE_VERBS or verb[0] >= len(parts) - 1:
        return False
    if parts[-1].endswith("s") and not parts[-1].endswith(("ss", "us", "is")):
        return False
    props = list(((schema or {}).get("properties") or {}).keys())
    required = [n for n in (schema or {}).get("required") or [] if n in props]
    first = str((required or props or [""])[0])
    return first.lower() in _ID_NAMES or first.endswith(_ID_SUFFIXES)
