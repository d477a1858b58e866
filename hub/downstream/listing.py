"""What a downstream lists: its `Listing` (tools, resources, templates, prompts and their list
`_meta`), paging through a list method's cursors, and which list a change event is about."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types

logger = logging.getLogger("hub.downstream")

MAX_LIST_PAGES = 100
ListKind = Literal["tools", "resources", "prompts"]


@dataclass
class Listing:
    """What a server offers, fetched page by page at connect and after each list change."""

    tools: list[types.Tool] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    resource_templates: list[types.ResourceTemplate] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per list method ("tools", "resources", "resource_templates", "prompts"): the result `_meta`
    the server sent, its pages merged in order (a later page's key wins); absent when it sent none."""



KEY_OF_KIND = {"tools": "name", "prompts": "name", "resources": "uri", "resource_templates": "uri_template"}
"""What names an item of each list: two items with the same are the same to a client."""


def last_of_each(items: list[Any], key: str) -> tuple[list[Any], list[str]]:
    """`items` with one item per `key` value, the last listed (in the order the last ones came), and
    the values listed more than once."""
    kept: list[Any] = []
    seen: set[str] = set()
    again: list[str] = []
    for item in reversed(items):
        name = str(getattr(item, key))
        if name in seen:
            again.append(name)
        else:
            seen.add(name)
            kept.append(item)
    kept.reverse()
    return kept, again


def event_kind(event: object) -> ListKind | None:
    label = type(event).__name__
    if label.startswith("Tools"):
        return "tools"
    if label.startswith("Resources"):
        return "resources"
    if label.startswith("Prompts"):
        return "prompts"
    return None



async def all_pages(fetch: Callable[..., Awaitable[Any]], meta: dict[str, dict[str, Any]] | None = None,
                     kind: str = "") -> list[Any]:
    """Follow a list method's cursors to the end (bounded, so a broken paginator cannot hang us);
    the pages' result `_meta`, merged, goes to `meta[kind]` (removed when no page had one)."""
    items: list[Any] = []
    cursor: str | None = None
    merged: dict[str, Any] = {}
    for _ in range(MAX_LIST_PAGES):
        page = await fetch(cursor=cursor)
        merged.update(page.meta or {})
        for attr in ("tools", "resources", "resource_templates", "prompts"):
            if hasattr(page, attr):
                items.extend(getattr(page, attr))
                break
        cursor = page.next_cursor
        if not cursor:
            break
    else:
        logger.warning("stopped following pagination after %d pages", MAX_LIST_PAGES)
    if meta is not None:  # only once every page arrived: a failed refresh keeps the previous one
        if merged:
            meta[kind] = merged
        else:
            meta.pop(kind, None)
    return items
