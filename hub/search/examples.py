"""Example requests: how people phrase the tasks a tool serves, for tool search to match against.

A tool's author knows how its users ask for it ("who's off next week?" for a time-off listing) far
better than any word table the hub could keep. A server gives them in the tool's `_meta` under
`EXAMPLES_META_KEY` (a list of short strings); an operator can give or replace them per tool in the
config (`tool_overrides: {"<glob>": {"examples": [...]}}`), e.g. for a third-party server. The hub
indexes each one on its own (a BM25 document, and a vector: `hub.search.index`) and takes the key out
of the tool it lists, so clients and their models never pay tokens for them.

Untrusted input: anything but a list of strings is ignored, each example is cut to
`MAX_EXAMPLE_CHARS` (before anything else is done with it: a server may send one string of 60 MB),
its white space folded and any character UTF-8 cannot carry (a lone surrogate) replaced, and at most
`MAX_EXAMPLES` are kept per tool. Examples are hidden from clients, so an untrusted server can use
them to pull its tools up the ranking (as it can with its descriptions); `tool_overrides` with
`"examples": []` turns a server's off (docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from hub.search.words import stem, terms

_NAME = re.compile(r"(?<=[\w,;:'\"] )[A-Z][a-z]+")
"""A capitalised word after another word: a name ("Globex", "Priya", "Berlin"), not a sentence's start."""

EXAMPLES_META_KEY = "mcp-hub/examples"
MAX_EXAMPLES = 32
MAX_EXAMPLE_CHARS = 200


def clean_examples(value: Any) -> tuple[str, ...]:
    """The usable examples in `value` (a server's `_meta` entry or a config list), in order, deduplicated."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return ()
    seen: dict[str, None] = {}
    for item in value:
        if isinstance(item, str) and (text := _fold(item)):
            seen.setdefault(text, None)
        if len(seen) >= MAX_EXAMPLES:
            break
    return tuple(seen)


def _fold(text: str) -> str:
    """`text` cut to `MAX_EXAMPLE_CHARS` (cut first, then white space folded), valid UTF-8."""
    cut = " ".join(text[: MAX_EXAMPLE_CHARS * 4].split())[:MAX_EXAMPLE_CHARS]
    return cut.encode("utf-8", "replace").decode("utf-8")


def split_examples(meta: dict[str, Any] | None) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """(`meta` without the examples key — None when nothing is left —, the examples it held)."""
    if not meta or EXAMPLES_META_KEY not in meta:
        return meta, ()
    kept = {k: v for k, v in meta.items() if k != EXAMPLES_META_KEY}
    return kept or None, clean_examples(meta[EXAMPLES_META_KEY])


def example_terms(example: str, vocabulary: Collection[str]) -> list[str]:
    """The keyword terms of `example` without the names it uses as sample values ("invoices for Globex"):
    a capitalised word after another word whose stem is not in `vocabulary` (the catalog's own words and
    the synonym table's). Else a request that names its own customer Globex would be pulled toward
    every tool whose examples happen to use the same sample name."""
    names = sample_names(example) - set(vocabulary)
    return [t for t in terms(example) if t not in names]


def sample_names(example: str) -> set[str]:
    """The stems of the capitalised words after another word in `example`: its sample names unless the
    vocabulary knows them (`example_terms`)."""
    return {stem(w.lower()) for w in _NAME.findall(example)}
