"""The set-up leaves every module of the project compiled (tools/setup.sh, issue 23 goal 2): an
editable install writes no bytecode, and where PYTHONDONTWRITEBYTECODE is set Python never writes it,
so without this every start of the hub compiled its modules from source again (~0.2 s a start)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _stale_or_missing(source: Path) -> bool:
    """Whether Python would compile `source` on import: no bytecode beside it, or bytecode written
    for another version of the file (the header's source mtime and size, as the import system checks)."""
    cached = Path(importlib.util.cache_from_source(str(source)))
    try:
        header = cached.read_bytes()[:16]
    except FileNotFoundError:
        return True
    flags = int.from_bytes(header[4:8], "little")
    if flags & 1:  # hash-based bytecode: valid by its own check
        return False
    stat = source.stat()
    return (int.from_bytes(header[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF
            or int.from_bytes(header[12:16], "little") != stat.st_size & 0xFFFFFFFF)


def test_every_module_of_the_hub_and_its_domains_has_current_bytecode() -> None:
    sources = [path for package in ("hub", "servers") for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(sources) > 100, "the project's sources were not found"
    stale = [str(path.relative_to(ROOT)) for path in sources if _stale_or_missing(path)]
    assert not stale, (f"{len(stale)} module(s) have no current bytecode, so each start compiles them "
                       f"(first: {', '.join(stale[:5])}); `bash tools/setup.sh` compiles them "
                       f"(PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r} here)")
