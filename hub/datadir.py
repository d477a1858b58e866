"""The hub's data directory and its SQLite databases (WAL mode, versioned migrations at open)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path


def default_data_dir() -> Path:
    """`$MCP_HUB_DATA_DIR`, else `$XDG_DATA_HOME/mcp-hub`, else `~/.local/share/mcp-hub`."""
    if env := os.environ.get("MCP_HUB_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mcp-hub"


def default_cache_dir() -> Path:
    """Where derived data that can be rebuilt at any time lives (the listing cache):
    `$MCP_HUB_CACHE_DIR`, else `$XDG_CACHE_HOME/mcp-hub`, else `~/.cache/mcp-hub`."""
    if env := os.environ.get("MCP_HUB_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-hub"


def resolve_data_dir(configured: str | None) -> Path:
    """The configured data dir (with `~` expanded), else the default."""
    return Path(configured).expanduser() if configured else default_data_dir()


def open_db(path: Path, migrations: Sequence[str]) -> sqlite3.Connection:
    """Open (creating) a SQLite file in WAL mode and apply any migrations not yet applied.

    `migrations[i]` brings the schema from version i to i+1; the version lives in `user_version`.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(migrations[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    return conn


def audit_digest_key(data_dir: Path) -> bytes:
    """The per-installation key for argument digests in the audit log (created once, mode 0600),
    so a digest of a low-entropy value (an id number) cannot be reversed by guessing."""
    path = data_dir / "audit.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another hub process created it first
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(32))
    return path.read_bytes()
