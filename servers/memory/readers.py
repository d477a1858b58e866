"""Reading documents from disk: markdown and plain text as they are, HTML as its visible text
(stdlib `html.parser`), PDF through `pypdf`. Paths are only read inside the roots listed in
`$MEMORY_ALLOWED_PATHS` (os.pathsep-separated); with none set, the ingest tool reads no files
(the `mcp-hub memory ingest` CLI reads what its user names). Text and HTML bytes are decoded by
`servers.memory.decoding` (byte-order marks, UTF-8, Windows-1252), or the file is refused: never stored
with replacement characters."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

from servers.kit.errors import DomainError
from servers.memory.decoding import decode_text

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf"}
MAX_BYTES = 50 * 1024 * 1024


class _Text(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "section", "article", "li", "tr", "br", "table", "ul", "ol", "pre", "blockquote"}
    HEADINGS = {"h1": "#", "h2": "##", "h3": "###", "h4": "####", "h5": "#####", "h6": "######"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.HEADINGS:
            self.parts.append(f"\n\n{self.HEADINGS[tag]} ")
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.HEADINGS or tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text with headings as markdown `#` lines and blocks as paragraphs)."""
    parser = _Text()
    parser.feed(html)
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    cleaned = "\n".join(lines)
    while "\n\n\n" in cleaned:
        cleaned = cleaned.replace("\n\n\n", "\n\n")
    return parser.title, cleaned.strip()


def allowed_roots() -> list[Path]:
    return [Path(p).resolve() for p in os.environ.get("MEMORY_ALLOWED_PATHS", "").split(os.pathsep) if p.strip()]


def check_allowed(path: Path, roots: list[Path]) -> Path:
    resolved = path.expanduser().resolve()
    if not roots:
        raise DomainError("forbidden", "this server reads no files: set MEMORY_ALLOWED_PATHS to the folders it may read, "
                          "or pass the document's text")
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise DomainError("forbidden", f"{path} is outside the folders this server may read (MEMORY_ALLOWED_PATHS)")
    return resolved


def read_document(path: Path) -> tuple[str, str]:
    """(title, text) of a markdown, text, HTML or PDF file."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise DomainError("invalid_argument", f"{path.name}: unsupported file type {suffix or '(none)'}; "
                          f"supported: {', '.join(sorted(SUPPORTED))}")
    if not path.is_file():
        raise DomainError("not_found", f"{path} does not exist or is not a file")
    if path.stat().st_size > MAX_BYTES:
        raise DomainError("invalid_argument", f"{path.name} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if suffix == ".pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(str(path))
            pages = [page.extract_text() or "" for page in reader.pages]
        except (PdfReadError, ValueError, KeyError) as exc:
            raise DomainError("invalid_argument", f"{path.name} is not a readable PDF ({type(exc).__name__})") from None
        title = str((reader.metadata or {}).get("/Title") or "") if reader.metadata else ""
        return title or path.stem, "\n\n".join(p.strip() for p in pages if p.strip())
    raw = decode_text(path.name, path.read_bytes(), html=suffix in HTML_SUFFIXES)  # BOM, UTF-8, cp1252, or refused
    if suffix in HTML_SUFFIXES:
        title, text = html_to_text(raw)
        return title or path.stem, text
    first = next((line for line in raw.splitlines() if line.strip()), "")
    title = first.lstrip("#").strip() if first.startswith("#") else path.stem
    return title, raw
