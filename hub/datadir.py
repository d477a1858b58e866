"""The hub's data directory and its SQLite databases (WAL mode, versioned migrations at open)."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

logger = logging.getLogger("hub.datadir")
PRIVATE = 0o600
_warned: set[Path] = set()


_server_data_dir: ContextVar[Path | None] = ContextVar("server_data_dir", default=None)


@contextmanager
def server_data_dir(path: Path | None) -> Iterator[None]:
    """While an in-process server is built, `default_data_dir()` is `path` (its `data_dir`), so two
    servers of one built-in domain can keep their databases apart (`hub.downstream.inprocess`)."""
    token = _server_data_dir.set(path)
    try:
        yield
    finally:
        _server_data_dir.reset(token)


_server_shared_store: ContextVar[tuple[str, str] | None] = ContextVar("server_shared_store", default=None)


@contextmanager
def server_shared_store(url: str | None, scope: str) -> Iterator[None]:
    """While an in-process server is built, `shared_store_for_server()` is the hub's PostgreSQL store
    (`hub.store.url`) and the server's namespace, where its idempotency records go (replicas)."""
    token = _server_shared_store.set((url, scope) if url else None)
    try:
        yield
    finally:
        _server_shared_store.reset(token)


def shared_store_for_server(default_scope: str) -> tuple[str, str] | None:
    """(PostgreSQL URL, scope) for the server being built: the hub's (`server_shared_store`), else
    `$MCP_HUB_STORE_URL` (a domain server on its own, scoped by `default_scope`, its name), else None."""
    if (bound := _server_shared_store.get()) is not None:
        return bound
    url = os.environ.get("MCP_HUB_STORE_URL") or None
    return (url, default_scope) if url else None


def default_data_dir() -> Path:
    """The data dir of the in-process server being built (`server_data_dir`), else
    `$MCP_HUB_DATA_DIR`, else `$XDG_DATA_HOME/mcp-hub`, else `~/.local/share/mcp-hub`."""
    if (own := _server_data_dir.get()) is not None:
        return own
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


def listing_cache_path(cache_dir: Path, server: str) -> Path:
    """Where server `server`'s remembered listing lives (`hub.catalog.listing_cache`)."""
    return cache_dir / f"listing-{server}.json"


def resolve_data_dir(configured: str | None) -> Path:
    """The configured data dir (with `~` expanded), else the default."""
    return Path(configured).expanduser() if configured else default_data_dir()


def open_db(path: Path, migrations: Sequence[str]) -> sqlite3.Connection:
    """Open (creating) a SQLite file in WAL mode and apply any migrations not yet applied.

    `migrations[i]` brings the schema from version i to i+1; the version lives in `user_version`.
    The file is private to its owner (0600, whatever the umask or the directory's mode; SQLite
    gives its `-wal`/`-shm` files the database's mode), see `make_private`.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    warn_if_shared(path.parent)
    make_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    with _opening(path):
        # One opener at a time per file, processes and threads alike: two in-process servers of one
        # domain or two replicas opening a new database at once each found it unmigrated, and one died
        # on "table ... already exists" or "database is locked" (outside reviews).
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # What is deleted or overwritten (a forgotten memory, a purged webhook payload, a revoked key) is zeroed in
        # the file, not left in free pages: SQLite's default unless built otherwise (Debian's is; others' not).
        conn.execute("PRAGMA secure_delete=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(migrations[version:], start=version + 1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    return conn


@contextmanager
def _opening(path: Path) -> Iterator[None]:
    """An exclusive lock on `<path>.lock` (a private file beside the database) while it is opened."""
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, PRIVATE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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


def make_private(path: Path) -> None:
    """Create `path` empty with mode 0600 if it is missing (an empty file is a valid new SQLite
    database); tighten it and its `-wal`/`-shm` companions to 0600 if a looser mode is found (files
    written by an older version). A file owned by someone else is left alone, with a warning."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, PRIVATE)  # the umask only removes bits; this sets exactly 0600
        finally:
            os.close(fd)
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode == PRIVATE:
            continue
        try:
            os.chmod(candidate, PRIVATE)
        except PermissionError:
            logger.warning("%s is not private (mode %03o) and cannot be changed by this user", candidate, mode)
        else:
            logger.warning("%s had mode %03o; changed it to 0600 (only its owner may read it)", candidate, mode)


def warn_if_shared(directory: Path) -> None:
    """Warn once per process and directory when other users may list or change `directory`
    (its databases stay 0600, but their names and sizes show, and a writable dir lets others
    replace them)."""
    if directory in _warned:
        return
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError:
        return
    if mode & 0o066:
        _warned.add(directory)
        logger.warning("data dir %s is readable or writable by group/others (mode %03o): run `chmod 700 %s`",
                       directory, mode, directory)
