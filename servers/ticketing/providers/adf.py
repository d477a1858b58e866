"""Atlassian Document Format ⇄ markdown, for Jira descriptions and comments.

Covers what tickets use: paragraphs, headings, bullet and ordered lists, code blocks, block
quotes, rules, hard breaks, and the strong / em / code / strike / link marks. Unknown nodes keep
their text, so nothing a user wrote is dropped.
"""

from __future__ import annotations

import re
from typing import Any

_INLINE = re.compile(r"(\*\*(.+?)\*\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)|~~(.+?)~~|(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?!\*))")


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
        list_match = re.match(r"^(\s*)([-*]|\d+\.)\s+", line)
        if list_match:
            ordered = list_match.group(2)[0].isdigit()
            items = []
            while i < len(lines) and (m := re.match(r"^\s*([-*]|\d+\.)\s+(.*)$", lines[i])) and m.group(1)[0].isdigit() == ordered:
                items.append({"type": "listItem", "content": [{"type": "paragraph", "content": _inline(m.group(2))}]})
                i += 1
            content.append({"type": "orderedList" if ordered else "bulletList", "content": items})
            continue
        if line.startswith(">"):
            quoted = []
            while i < len(lines) and lines[i].startswith(">"):
                quoted.append(lines[i][1:].lstrip())
                i += 1
            content.append({"type": "blockquote", "content": markdown_to_adf("\n".join(quoted))["content"]})
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6}\s|```|>|\s*([-*]|\d+\.)\s)", lines[i]):
            paragraph.append(lines[i])
            i += 1
        nodes: list[dict[str, Any]] = []
        for index, text in enumerate(paragraph):
            if index:
                nodes.append({"type": "hardBreak"})
            nodes.extend(_inline(text))
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


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
    return "".join(_text(child) if child.get("type") in ("text", "hardBreak", "mention", "emoji") else _block(child, depth)
                   for child in children)


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
