"""Example requests: how people phrase the tasks a tool serves, for tool search to match against.

A tool's author knows how its users ask for it ("who's off next week?" for a time-off listing) far
better than any word table the hub could keep. A server gives them in the tool's `_meta` under
`EXAMPLES_META_KEY` (a list of short strings); an operator can give or replace them per tool in the
config (`tool_overrides: {"<glob>": {"examples": [...]}}`), e.g. for a third-party server. The hub
indexes them (a BM25F field, and each one embedded: `hub.search.index`) and takes the key out of the
tool it lists, so clients and their models never pay tokens for them.

Untrusted input: anything but a list of strings is ignored, each example is trimmed and cut to
`MAX_EXAMPLE_CHARS`, and at most `MAX_EXAMPLES` are kept per tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EXAMPLES_META_KEY = "mcp-hub/examples"
MAX_EXAMPLES = 32
MAX_EXAMPLE_CHARS = 200


def clean_examples(value: Any) -> tuple[str, ...]:
    """The usable examples in `value` (a server's `_meta` entry or a config list), in order, deduplicated."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return ()
    seen: dict[str, None] = {}
    for item in value:
        if isinstance(item, str) and (text := " ".join(item.split())[:MAX_EXAMPLE_CHARS]):
            seen.setdefault(text, None)
        if len(seen) >= MAX_EXAMPLES:
            break
    return tuple(seen)


def split_examples(meta: dict[str, Any] | None) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """(`meta` without the examples key — None when nothing is left —, the examples it held)."""
    if not meta or EXAMPLES_META_KEY not in meta:
        return meta, ()
    kept = {k: v for k, v in meta.items() if k != EXAMPLES_META_KEY}
    return kept or None, clean_examples(meta[EXAMPLES_META_KEY])
