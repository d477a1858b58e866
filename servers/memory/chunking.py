"""Splitting documents into retrievable chunks: on markdown headings first, then paragraphs,
then sentences, packed up to about `size` characters with `overlap` characters carried over from
the previous chunk of the same section. Each chunk keeps the heading path it sits under."""

from __future__ import annotations

import re
from dataclasses import dataclass

from servers.kit.text import is_blank

# ~500 characters + 100 of overlap is ~130 word pieces with the title and heading prepended: about
# the 128 MiniLM was trained on, so the vector covers the whole chunk, and ~1.6x the chunks per
# CPU-second of 900/150 at the same recall (docs/memory.md).
CHUNK_SIZE = 500
CHUNK_OVERLAP = 100
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str
    position: int


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading path, body) pairs; text before the first heading has an empty path."""
    path: list[str] = []
    sections: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            level = len(match.group(1))
            path = path[: level - 1] + [match.group(2)]
            sections.append((" > ".join(path), []))
        else:
            sections[-1][1].append(line)
    return [(heading, "\n".join(lines).strip()) for heading, lines in sections if "\n".join(lines).strip() or heading]


def _pieces(body: str, size: int) -> list[tuple[str, bool]]:
    """(piece, starts a paragraph): paragraphs, any longer than `size` cut at sentence ends (or hard)."""
    out: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n\s*\n", body):
        paragraph = paragraph.strip()
        if is_blank(paragraph):  # nothing visible to find (U+200B, U+FEFF, ...)
            continue
        if len(paragraph) <= size:
            out.append((paragraph, True))
            continue
        first = True
        for sentence in _SENTENCE.split(paragraph):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                out.append((sentence[:cut].strip(), first))
                first = False
                sentence = sentence[cut:].strip()
            if sentence:
                out.append((sentence, first))
                first = False
    return out


def chunk_text(text: str, size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP) -> list[Chunk]:
    """Chunks of at most about `size` characters (+ `overlap` of context from the one before)."""
    if size < 100:
        raise ValueError("chunk size must be at least 100 characters")
    overlap = max(0, min(overlap, size // 2))
    chunks: list[Chunk] = []
    for heading, body in _sections(text):
        current: list[tuple[str, bool]] = []
        carried = ""

        def flush() -> None:
            nonlocal carried
            if not current:
                return
            joined = "".join(("\n\n" if starts else " ") + piece if i else piece for i, (piece, starts) in enumerate(current))
            chunks.append(Chunk(text=(carried + " " + joined).strip() if carried else joined, heading=heading, position=len(chunks)))
            tail = joined[-overlap:] if overlap else ""
            carried = tail[tail.find(" ") + 1 :] if " " in tail else tail
            current.clear()

        for piece, starts in _pieces(body, size):
            if current and sum(len(p) + 2 for p, _ in current) + len(piece) > size:
                flush()
            current.append((piece, starts))
        flush()
    return chunks
