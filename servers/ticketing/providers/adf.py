"""Atlassian Document Format ⇄ markdown, for Jira descriptions and comments.

Both ways: paragraphs, headings, bullet and ordered lists (nested by indentation), code blocks, block
quotes, rules, hard breaks, tables (markdown pipe tables), smart links (`inlineCard`, and `blockCard` /
`embedCard` read as one: `<https://…>`), status lozenges (`{status:BLOCKED}`, `{status:BLOCKED|red}`
with a colour), dates (`{date:2026-12-05}`), mentions and emoji (their text), and the strong / em / code /
strike / link marks. What markdown cannot carry (media, panels, expands, macros, task and decision lists,
a table cell holding more than text) is listed by `lossy_nodes`: the connector refuses to replace a
description holding it, since writing the markdown back would erase it from Jira (outside review
domains26 #3: a pasted link, a table and a lozenge were erased by an agent's append). Unknown nodes
still show their text when read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_INLINE = re.compile(r"(\*\*(.+?)\*\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)|~~(.+?)~~|(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?!\*)"
                     r"|<(https?://[^>\s]+)>|\{status:([^|}]+)(?:\|([a-z]+))?\}|\{date:(\d{4}-\d{2}-\d{2})\})")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|(\s*:?-{3,}:?\s*\|)+\s*$")
SUPPORTED = frozenset({"doc", "paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock", "blockquote", "rule",
                       "hardBreak", "text", "mention", "emoji", "inlineCard", "blockCard", "embedCard", "status", "date",
                       "table", "tableRow", "tableHeader", "tableCell"})
"""Node types `adf_to_markdown` writes as markdown that `markdown_to_adf` reads back (their content kept)."""


def markdown_to_adf(markdown: str) -> dict[str, Any]:
    """A `doc` node for Jira from markdown text."""
    content: list[dict[str, Any]] = []
    lines = markdown.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("```"):
            language = line[3:].strip()
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            i += 1
            node: dict[str, Any] = {"type": "codeBlock", "content": [{"type": "text", "text": "\n".join(body)}] if body else []}
            if language:
                node["attrs"] = {"language": language}
            content.append(node)
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            content.append({"type": "heading", "attrs": {"level": len(heading.group(1))}, "content": _inline(heading.group(2))})
            i += 1
            continue
        if re.match(r"^(-{3,}|\*{3,})\s*$", line):
            content.append({"type": "rule"})
            i += 1
            continue
        if re.match(r"^(\s*)([-*]|\d+\.)\s+", line):
            node, i = _list(lines, i)
            content.append(node)
            continue
        if _TABLE_ROW.match(line) and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            rows = [line]
            i += 2
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                rows.append(lines[i])
                i += 1
            content.append(_table(rows))
            continue
        if line.startswith(">"):
            quoted = []
            while i < len(lines) and lines[i].startswith(">"):
                quoted.append(lines[i][1:].lstrip())
                i += 1
            content.append({"type": "blockquote", "content": markdown_to_adf("\n".join(quoted))["content"]})
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6}\s|```|>|\s*([-*]|\d+\.)\s)", lines[i]) and not (
                paragraph and _TABLE_ROW.match(lines[i]) and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1])):
            paragraph.append(lines[i])
            i += 1
        nodes: list[dict[str, Any]] = []
        for index, text in enumerate(paragraph):
            if index:
                nodes.append({"type": "hardBreak"})
            nodes.extend(_inline(text))
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def _list(lines: list[str], i: int) -> tuple[dict[str, Any], int]:
    """The list starting at `lines[i]`, with items indented deeper than its own as nested lists."""
    first = re.match(r"^(\s*)([-*]|\d+\.)\s+", lines[i])
    assert first is not None
    indent, ordered = len(first.group(1)), first.group(2)[0].isdigit()
    items: list[dict[str, Any]] = []
    while i < len(lines) and (m := re.match(r"^(\s*)([-*]|\d+\.)\s+(.*)$", lines[i])):
        depth = len(m.group(1))
        if depth > indent and items:  # a nested list belongs to the item before it
            nested, i = _list(lines, i)
            items[-1]["content"].append(nested)
            continue
        if depth < indent or m.group(2)[0].isdigit() != ordered:
            break
        items.append({"type": "listItem", "content": [{"type": "paragraph", "content": _inline(m.group(3))}]})
        i += 1
    return {"type": "orderedList" if ordered else "bulletList", "content": items}, i


def _cells(row: str) -> list[str]:
    inner = row.strip()[1:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _table(rows: list[str]) -> dict[str, Any]:
    """A pipe table as an ADF table: its first row as header cells."""
    def row(cells: list[str], kind: str) -> dict[str, Any]:
        return {"type": "tableRow", "content": [
            {"type": kind, "content": [{"type": "paragraph", "content": _inline(cell)}]} for cell in cells]}

    return {"type": "table", "content": [row(_cells(rows[0]), "tableHeader"), *(row(_cells(r), "tableCell") for r in rows[1:])]}


def _inline(text: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            nodes.append({"type": "text", "text": text[position : match.start()]})
        if match.group(2) is not None:
            nodes.append({"type": "text", "text": match.group(2), "marks": [{"type": "strong"}]})
        elif match.group(3) is not None:
            nodes.append({"type": "text", "text": match.group(3), "marks": [{"type": "code"}]})
        elif match.group(4) is not None:
            nodes.append({"type": "text", "text": match.group(4), "marks": [{"type": "link", "attrs": {"href": match.group(5)}}]})
        elif match.group(6) is not None:
            nodes.append({"type": "text", "text": match.group(6), "marks": [{"type": "strike"}]})
        elif match.group(8) is not None:
            nodes.append({"type": "inlineCard", "attrs": {"url": match.group(8)}})
        elif match.group(9) is not None:
            nodes.append({"type": "status", "attrs": {"text": match.group(9), "color": match.group(10) or "neutral"}})
        elif match.group(11) is not None:
            moment = datetime.strptime(match.group(11), "%Y-%m-%d").replace(tzinfo=UTC)
            nodes.append({"type": "date", "attrs": {"timestamp": str(int(moment.timestamp() * 1000))}})
        else:
            nodes.append({"type": "text", "text": match.group(7), "marks": [{"type": "em"}]})
        position = match.end()
    if position < len(text):
        nodes.append({"type": "text", "text": text[position:]})
    return nodes


def adf_to_markdown(node: Any) -> str:
    """Markdown from an ADF `doc` (or a plain string, which some Jira fields still return)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    return _block(node).strip()


def _block(node: dict[str, Any], depth: int = 0) -> str:
    kind = node.get("type")
    children = node.get("content") or []
    if kind == "doc":
        return "\n\n".join(_block(child, depth) for child in children)
    if kind == "paragraph":
        return "".join(_text(child) for child in children)
    if kind == "heading":
        return "#" * int((node.get("attrs") or {}).get("level", 1)) + " " + "".join(_text(c) for c in children)
    if kind in ("bulletList", "orderedList"):
        lines = []
        for number, item in enumerate(children, start=1):
            marker = f"{number}." if kind == "orderedList" else "-"
            body = "\n".join(_block(part, depth + 1) for part in item.get("content") or [])
            lines.append("  " * depth + f"{marker} {body}")
        return "\n".join(lines)
    if kind == "codeBlock":
        language = (node.get("attrs") or {}).get("language", "")
        return f"```{language}\n" + "".join(_text(c) for c in children) + "\n```"
    if kind == "blockquote":
        return "\n".join("> " + line for line in "\n\n".join(_block(c, depth) for c in children).split("\n"))
    if kind == "rule":
        return "---"
    if kind in ("inlineCard", "blockCard", "embedCard"):
        url = (node.get("attrs") or {}).get("url")
        return f"<{url}>" if url else ""
    if kind == "status":
        attrs = node.get("attrs") or {}
        color = attrs.get("color") or "neutral"
        return "{status:" + str(attrs.get("text", "")) + ("" if color == "neutral" else f"|{color}") + "}"
    if kind == "date":
        return _date(node)
    if kind == "table":
        return _markdown_table(children)
    return "".join(_text(child) if child.get("type") in ("text", "hardBreak", "mention", "emoji") else _block(child, depth)
                   for child in children)


def _date(node: dict[str, Any]) -> str:
    try:
        stamp = int(str((node.get("attrs") or {}).get("timestamp", "")))
    except ValueError:
        return ""
    return "{date:" + datetime.fromtimestamp(stamp / 1000, UTC).strftime("%Y-%m-%d") + "}"


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    """A pipe table; a first row of data cells is written as the header row (markdown tables have one)."""
    lines = []
    for index, row in enumerate(rows):
        cells = [" ".join(_block(part).replace("\n", " ") for part in cell.get("content") or []).replace("|", "\\|")
                 for cell in row.get("content") or []]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "---|" * max(1, len(cells)))
    return "\n".join(lines)


def lossy_nodes(node: Any) -> list[str]:
    """The node types in an ADF document that markdown cannot carry back (see the module), each once."""
    found: dict[str, None] = {}

    def walk(item: Any, in_cell: bool = False) -> None:
        if not isinstance(item, dict):
            return
        kind = str(item.get("type", ""))
        if kind not in SUPPORTED or (in_cell and kind not in ("paragraph", "text", "hardBreak", "mention", "emoji", "inlineCard",
                                                              "status", "date")):
            found[kind or "unknown"] = None
        for child in item.get("content") or []:
            walk(child, in_cell or kind in ("tableCell", "tableHeader"))

    if isinstance(node, dict):
        walk(node)
    return list(found)


def _text(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        return str((node.get("attrs") or {}).get("text", "@someone"))
    if kind == "emoji":
        return str((node.get("attrs") or {}).get("text", ""))
    if kind != "text":
        return _block(node)
    text = str(node.get("text", ""))
    for mark in node.get("marks") or []:
        mark_type = mark.get("type")
        if mark_type == "strong":
            text = f"**{text}**"
        elif mark_type == "em":
            text = f"*{text}*"
        elif mark_type == "code":
            text = f"`{text}`"
        elif mark_type == "strike":
            text = f"~~{text}~~"
        elif mark_type == "link":
            text = f"[{text}]({(mark.get('attrs') or {}).get('href', '')})"
    return text
