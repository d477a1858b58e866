"""Audit rows in SQLite (`audit.sqlite` in the data dir), written off the event loop.

Rows are queued and inserted in batches by one writer thread, so recording never blocks a call.
If the store fails (disk full, file unwritable) or the queue overflows, the log turns unhealthy
and the audit policy applies `audit.on_failure` — by default refusing writes (fail closed) while
reads continue, loudly logged.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from hub.datadir import open_db

logger = logging.getLogger("hub.audit")

_MIGRATIONS = [
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        tool TEXT NOT NULL,
        server TEXT,
        outcome TEXT NOT NULL,
        error_code TEXT,
        latency_ms REAL,
        args_digest TEXT,
        args TEXT
    );
    CREATE INDEX audit_ts ON audit(ts);
    CREATE INDEX audit_principal ON audit(principal, ts);
    CREATE INDEX audit_tool ON audit(tool, ts)""",
    # Who, exactly: `api_key` + the key's id, `jwt` + the issuer (the subject is `principal`), or
    # `local`; so a JWT `sub` equal to an API key's principal name is told apart.
    """ALTER TABLE audit ADD COLUMN auth_kind TEXT;
    ALTER TABLE audit ADD COLUMN credential TEXT""",
]
COLUMNS = ("ts", "request_id", "principal", "tool", "server", "outcome", "error_code", "latency_ms", "args_digest", "args",
           "auth_kind", "credential")
VALUE_LIMIT = 1024
"""Kept argument values are stored cut to this many characters (the digest covers them whole)."""
_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class AuditEvent(NamedTuple):
    """One call as the audit policy saw it; the writer thread turns it into a row (argument digest
    and redaction happen there, off the call's path)."""

    ts: float
    request_id: str
    principal: str
    tool: str
    server: str | None
    outcome: str
    """`ok`, `tool_error` (the tool answered isError), `error` (the hub or transport failed), `denied`."""
    error_code: str | None
    latency_ms: float | None
    arguments: dict[str, Any]
    """A shallow copy of the call's arguments: stored as an HMAC digest plus the redacted text."""
    keep: frozenset[str]
    """Argument fields whose values are stored (then masked); every other value is redacted."""
    auth_kind: str = "local"
    credential: str = ""


LINGER_S = 0.02
"""How long the writer waits after the first row of a batch before writing it."""


class AuditLog:
    def __init__(self, data_dir: Path, digest_key: bytes, max_queue: int = 10_000) -> None:
        self.path = data_dir / "audit.sqlite"
        self._digest_key = digest_key
        # A deque, not a queue.Queue: appending takes no lock, so recording costs a call next to
        # nothing; the writer is woken once per batch, by the first row after it went to sleep.
        self._waiting: deque[AuditEvent] = deque()
        self._max_queue = max_queue
        self._wake = threading.Event()
        self._recorded = 0
        self._handled = 0
        self._closing = False
        self.healthy = True
        self.last_error: str | None = None
        self._db = open_db(self.path, _MIGRATIONS)
        self._thread = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Queue one row (from the event loop's thread)."""
        if len(self._waiting) >= self._max_queue:
            self._fail("the audit queue is full (the store cannot keep up)")
            return
        self._waiting.append(event)
        self._recorded += 1
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every row recorded so far is written (tests, shutdown)."""
        target, deadline = self._recorded, time.monotonic() + timeout
        while self._handled < target and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(5)

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            if not self._closing:
                # Let a burst gather: one wake-up and one transaction per LINGER_S instead of per
                # call, so auditing costs a busy hub almost nothing.
                time.sleep(LINGER_S)
            self._wake.clear()  # rows from now on wake the next round; those already here go in this one
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(500, len(self._waiting)))]
                self._write(batch)
                self._handled += len(batch)
            if self._closing:
                return

    def _write(self, batch: list[AuditEvent]) -> None:
        try:
            # One transaction per batch: in autocommit mode each row would be a commit of its own
            # (a WAL append and lock round per row, about four times the cost).
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, [self._row(event) for event in batch])
            if not self.healthy:
                logger.warning("audit store is writable again")
            self.healthy, self.last_error = True, None
        except sqlite3.Error as exc:
            self._fail(f"cannot write {self.path}: {exc}")

    def _row(self, event: AuditEvent) -> tuple[Any, ...]:
        canonical = json.dumps(event.arguments, sort_keys=True, separators=(",", ":"), default=str)
        digest = hmac.digest(self._digest_key, canonical.encode(), "sha256").hex()
        return (*event[:8], digest, redact_arguments(event.arguments, event.keep), event.auth_kind, event.credential)

    def _fail(self, reason: str) -> None:
        if self.healthy:
            logger.error("audit log unavailable: %s", reason)
        self.healthy, self.last_error = False, reason


def query(
    data_dir: Path,
    principal: str | None = None,
    tool: str | None = None,
    since: float | None = None,
    outcome: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest-last audit rows matching the filters (read-only connection)."""
    path = data_dir / "audit.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    clauses, params = [], []
    for column, value in (("principal", principal), ("tool", tool), ("outcome", outcome)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    ).fetchall()
    conn.close()
    return [dict(zip(COLUMNS, row, strict=True)) for row in reversed(rows)]


def redact_arguments(arguments: dict[str, Any], keep: frozenset[str]) -> str:
    """The arguments as stored: values redacted unless their field is kept, then masked. A caller's
    text is bounded: names as `bounded_name` cuts them, kept values to `VALUE_LIMIT` characters,
    at most 100 fields."""
    names = tuple(arguments)
    if not keep.intersection(arguments):
        if len(names) <= 100 and sum(map(len, names)) <= 4096:
            return _redacted_keys(names)  # only names are shown: the same text for the same names
        return _redact_keys(names)
    from hub.redact import bounded_name, mask

    shown = {_name(k, bounded_name): (_cut(v) if k in keep else "[redacted]") for k, v in list(arguments.items())[:100]}
    return mask(json.dumps(shown, sort_keys=True, default=str))


def _name(name: str, bounded: Callable[[str], str]) -> str:
    """A field name as stored: a long one cut by `bounded_name` (every name is masked with the rest)."""
    return name if len(name) <= 128 else bounded(name)


def _cut(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= VALUE_LIMIT:
        return value
    return f"{text[:VALUE_LIMIT]}… ({len(text) - VALUE_LIMIT} more characters)"


@functools.lru_cache(maxsize=1024)
def _redacted_keys(names: tuple[str, ...]) -> str:
    return _redact_keys(names)


def _redact_keys(names: tuple[str, ...]) -> str:
    from hub.redact import bounded_name, mask

    shown = dict.fromkeys((_name(name, bounded_name) for name in names[:100]), "[redacted]")
    if len(names) > 100:
        shown[f"… {len(names) - 100} more"] = "[redacted]"
    return mask(json.dumps(shown, sort_keys=True))
