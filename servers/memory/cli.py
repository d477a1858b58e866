"""`mcp-hub memory ingest PATH...` (files and folders, with a progress bar) and
`mcp-hub memory import-graph FILE` (a reference server-memory JSONL file)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

from servers.kit.errors import DomainError
from servers.memory.readers import SUPPORTED, read_document
from servers.memory.service import MemoryService


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = Path(name).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED)
        elif path.exists():
            found.append(path)
        else:
            raise DomainError("not_found", f"{name} does not exist")
    return found


async def ingest(paths: list[str], data_dir: Path, tags: list[str], size: int, overlap: int) -> int:
    from tqdm import tqdm

    files = _files(paths)
    if not files:
        print(f"mcp-hub: no {', '.join(sorted(SUPPORTED))} files under {' '.join(paths)}", file=sys.stderr)
        return 1
    service = MemoryService(data_dir)
    counts = {"created": 0, "replaced": 0, "retagged": 0, "updated": 0, "unchanged": 0, "failed": 0}
    chunks = 0
    started = time.perf_counter()
    with tqdm(total=len(files), unit="file", file=sys.stderr, dynamic_ncols=True) as bar:
        for path in files:
            bar.set_postfix_str(path.name[-40:])
            try:
                title, text = read_document(path)

                async def progress(done: float, total: float, message: str) -> None:
                    bar.set_postfix_str(f"{path.name[-30:]} {int(done)}/{int(total)} chunks")

                result = await service.documents.ingest(title, text, path.resolve().as_uri(), tags, None, size, overlap, progress)
                counts[result.status] += 1
                chunks += result.document.chunks if result.status in ("created", "replaced") else 0
            except DomainError as exc:
                counts["failed"] += 1
                tqdm.write(f"skipped {path}: {exc.body.message}", file=sys.stderr)
            bar.update(1)
    elapsed = time.perf_counter() - started
    print(f"{len(files)} file(s): {counts['created']} new, {counts['replaced']} replaced, {counts['retagged']} retagged, {counts['unchanged']} unchanged, "
          f"{counts['failed']} failed; {chunks} chunks indexed in {elapsed:.1f}s ({chunks / elapsed if elapsed else 0:.1f} chunks/s)")
    return 1 if counts["failed"] else 0


async def import_graph(path: Path, data_dir: Path) -> int:
    result = await MemoryService(data_dir).graph.import_jsonl(path)
    print(f"imported {result['entities']} entities, {result['observations_added']} observations into existing ones, "
          f"{result['relations']} relations from {path}")
    return 0


def run(command: str, args: list[str], data_dir: Path, tags: list[str], size: int, overlap: int) -> int:
    try:
        if command == "ingest":
            return anyio.run(ingest, args, data_dir, tags, size, overlap)
        return anyio.run(import_graph, Path(args[0]), data_dir)
    except DomainError as exc:
        print(f"mcp-hub: {exc.body.message}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"mcp-hub: {exc}", file=sys.stderr)
        return 1
