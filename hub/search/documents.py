"""What tool search knows about one tool: its weighted BM25 fields and the text it embeds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from hub.search.intent import Action, Intent, param_shapes, tool_action, tool_intent
from hub.search.specific import fetches_one
from hub.search.words import split_identifier, terms

MAX_PARAMS = 24
"""Parameters indexed per tool (a huge schema must not drown its name and description)."""


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
    """`create`, `update` or `delete` by the name's first word (`hub.search.intent.tool_action`)."""
    one: bool = False
    """Reads one record by an identifier (`hub.search.specific.fetches_one`)."""
    examples: tuple[str, ...] = ()
    """Example requests (`hub.search.examples`), each embedded on its own."""


def text_key(text: str) -> str:
    """Content hash of an embedded text (the vector cache key; the cache file is per model)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _params(schema: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(name, description) of each top-level parameter (and enum values, which name choices)."""
    props = (schema or {}).get("properties") or {}
    out: list[tuple[str, str]] = []
    for name, spec in list(props.items())[:MAX_PARAMS]:
        spec = spec if isinstance(spec, dict) else {}
        text = str(spec.get("description") or spec.get("title") or "")
        items = spec.get("items") if isinstance(spec.get("items"), dict) else {}
        enum = spec.get("enum") or items.get("enum")
        if enum:
            text += " " + " ".join(str(v) for v in enum[:12])
        out.append((name, text[:300]))
    return out


def tool_doc(tool: types.Tool, original: str, namespace: str, instructions: str | None = None,
             examples: tuple[str, ...] = ()) -> ToolDoc:
    """Build the document for `tool` (exposed under `tool.name`, `original` on its server)."""
    title = tool.title or (tool.annotations.title if tool.annotations and tool.annotations.title else "") or ""
    description = (tool.description or "").strip()
    params = _params(tool.input_schema)
    fields = {
        "name": terms(original),
        "title": terms(title),
        "description": terms(description),
        "params": [t for name, text in params for t in terms(name) + terms(text)] + param_shapes(tool.input_schema),
        "namespace": terms(namespace),
        "instructions": terms((instructions or "")[:2000]),
    }
    words = split_identifier(original).lower()
    first = description.split("\n\n")[0][:600]
    parts = [f"{split_identifier(namespace).lower()}: {words}.", title, first]
    if params:
        parts.append("Parameters: " + ", ".join(split_identifier(n).lower() for n, _ in params) + ".")
    embed_text = " ".join(p for p in parts if p)
    name_text = f"{split_identifier(namespace).lower()}: {words}"
    return ToolDoc(name=tool.name, fields=fields, embed_text=embed_text, name_text=name_text, tool=tool,
                   namespace=namespace, intent=tool_intent(tool, original),
                   action=tool_action(original), one=fetches_one(original, tool.input_schema), examples=examples)
