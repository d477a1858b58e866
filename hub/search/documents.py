"""What tool search knows about one tool: its weighted BM25 fields and the text it embeds.

A downstream server's listing is untrusted and unbounded, so each text is cut before any work is
done with it (review console7 #1): the name to `MAX_NAME_CHARS`, the title to `MAX_TITLE_CHARS`, the
description to `MAX_DESCRIPTION_CHARS`, at most `MAX_PARAMS` parameters, each name to
`MAX_PARAM_NAME_CHARS` and its text to `MAX_PARAM_CHARS`, server instructions to
`MAX_INSTRUCTION_CHARS`; every word is cut to 64 characters (`hub.search.words.MAX_WORD_CHARS`).
A tool thus yields at most `MAX_TOOL_CHARS` characters of text, so at most about half as many
terms, whatever it sends (its example requests are capped apart: `hub.search.examples`); with the
typo index's own word-length cap (`hub.search.typos`), indexing a catalog costs time and memory
linear in its tool count.
The caps are far above any real tool's (the built-ins: descriptions ≤ 500 characters, ≤ 13
parameters) and BM25F normalises a field by its length, so a cut long text still ranks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import mcp_types as types

from hub.search.intent import Action, Intent, param_shapes, tool_action, tool_intent
from hub.search.specific import fetches_one
from hub.search.words import split_identifier, terms

MAX_PARAMS = 24
"""Parameters indexed per tool (a huge schema must not drown its name and description)."""
MAX_NAME_CHARS = 128
"""MCP's own limit on a tool name; a longer one from a server is cut."""
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 4_000
MAX_PARAM_NAME_CHARS = 64
MAX_PARAM_CHARS = 300
"""A parameter's description (or title) and enum values, together."""
MAX_ENUM_VALUES = 12
MAX_INSTRUCTION_CHARS = 2_000
MAX_TOOL_CHARS = (MAX_NAME_CHARS + MAX_TITLE_CHARS + MAX_DESCRIPTION_CHARS + MAX_INSTRUCTION_CHARS
                  + MAX_PARAMS * (MAX_PARAM_NAME_CHARS + MAX_PARAM_CHARS))
"""The most text one tool's fields are built from (its namespace, from the config, aside)."""


@dataclass(frozen=True)
class ToolDoc:
    """One searchable tool: `name` is the exposed name, `fields` the BM25F fields' terms."""

    name: str
    fields: dict[str, list[str]]
    embed_text: str
    """The tool in a few sentences: namespace, name words, title, description, parameter names."""
    name_text: str
    """Just `namespace: name words`, embedded on its own (short queries match it best)."""
    tool: types.Tool = field(compare=False, repr=False)
    namespace: str = ""
    intent: Intent = None
    """`read` or `write` (`hub.search.intent.tool_intent`), None when unknown."""
    action: Action = None
    """`create`, `update` or `delete` by the name's verb (`hub.search.intent.tool_action`), or None."""
    destructive: bool = False
    """Deletes or overwrites: its name's verb deletes, or its server marks it `destructiveHint` (not read-only)."""
    one: bool = False
    """Reads one record by an identifier (`hub.search.specific.fetches_one`)."""
    examples: tuple[str, ...] = ()
    """Example requests (`hub.search.examples`), each embedded on its own."""


def text_key(text: str) -> str:
    """Content hash of an embedded text (the vector cache key; the cache file is per model)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cut_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """`schema`'s first `MAX_PARAMS` properties, each name and description cut, and its `required` among them:
    all that search reads of a schema (anything malformed reads as absent)."""
    props = (schema or {}).get("properties")
    props = props if isinstance(props, dict) else {}
    out: dict[str, Any] = {}
    for name, spec in islice(props.items(), MAX_PARAMS):
        spec = spec if isinstance(spec, dict) else {}
        kept = {k: str(spec[k])[:MAX_PARAM_CHARS] for k in ("description", "title") if spec.get(k)}
        items = spec.get("items") if isinstance(spec.get("items"), dict) else {}
        enum = spec.get("enum") or items.get("enum")
        if isinstance(enum, list) and enum:
            kept["enum"] = [str(v)[:MAX_PARAM_CHARS] for v in enum[:MAX_ENUM_VALUES]]
        out[str(name)[:MAX_PARAM_NAME_CHARS]] = kept
    required = (schema or {}).get("required")
    required = required if isinstance(required, list) else []
    required = [n for n in islice(required, MAX_PARAMS) if isinstance(n, str) and n in out]
    return {"properties": out, "required": required}


def _params(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, description) of each top-level parameter of a cut schema (and enum values, which name choices)."""
    out: list[tuple[str, str]] = []
    for name, spec in schema["properties"].items():
        text = spec.get("description") or spec.get("title") or ""
        if spec.get("enum"):
            text += " " + " ".join(spec["enum"])
        out.append((name, text[:MAX_PARAM_CHARS]))
    return out


def tool_doc(tool: types.Tool, original: str, namespace: str, instructions: str | None = None,
             examples: tuple[str, ...] = ()) -> ToolDoc:
    """Build the document for `tool` (exposed under `tool.name`, `original` on its server); every text cut
    first (module docstring)."""
    original = original[:MAX_NAME_CHARS]
    title = tool.title or (tool.annotations.title if tool.annotations and tool.annotations.title else "") or ""
    title = title[:MAX_TITLE_CHARS]
    description = (tool.description or "")[:MAX_DESCRIPTION_CHARS].strip()
    schema = _cut_schema(tool.input_schema)
    params = _params(schema)
    fields = {
        "name": terms(original),
        "title": terms(title),
        "description": terms(description),
        "params": [t for name, text in params for t in terms(name) + terms(text)] + param_shapes(schema),
        "namespace": terms(namespace),
        "instructions": terms((instructions or "")[:MAX_INSTRUCTION_CHARS]),
    }
    words = split_identifier(original).lower()
    first = description.split("\n\n")[0][:600]
    parts = [f"{split_identifier(namespace).lower()}: {words}.", title, first]
    if params:
        parts.append("Parameters: " + ", ".join(split_identifier(n).lower() for n, _ in params) + ".")
    embed_text = " ".join(p for p in parts if p)
    name_text = f"{split_identifier(namespace).lower()}: {words}"
    intent, action, hints = tool_intent(tool, original), tool_action(original), tool.annotations
    destructive = intent != "read" and (action == "delete" or (hints is not None and hints.destructive_hint is True))
    return ToolDoc(name=tool.name, fields=fields, embed_text=embed_text, name_text=name_text, tool=tool,
                   namespace=namespace, intent=intent, action=action, destructive=destructive,
                   one=fetches_one(original, schema), examples=examples)
