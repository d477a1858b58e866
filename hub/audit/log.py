"""Audit rows in SQLite (`audit.sqlite` in the data dir) or PostgreSQL (`hub.store`), written off
the event loop.

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

from hub.store.base import AUDIT_COLUMNS, AuditFilter, AuditTable, StoreUnavailable

logger = logging.getLogger("hub.audit")

COLUMNS = AUDIT_COLUMNS
VALUE_LIMIT = 1024
"""Kept argument values are stored cut to this many characters (the digest covers them whole)."""


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


PROBE_INTERVAL_S = 1.0
"""While a remote store is down, the writer checks it this often (so `/healthz` shows recovery with no
call). The embedded SQLite store is only retried by the next row: a read would succeed on a file
that still refuses writes."""


class AuditLog:
    """Audit rows written in batches by one thread, to SQLite in `data_dir` or a shared `table`.

    `digest_key` None: the table's own (per data dir, or per PostgreSQL database, so every
    replica's argument digests compare equal), fetched by the writer on its first batch.
    """

    def __init__(self, data_dir: Path, digest_key: bytes | None = None, max_queue: int = 10_000,
                 table: AuditTable | None = None) -> None:
        if table is None:
            from hub.store.sqlite import SqliteAudit

            table = SqliteAudit(data_dir)
        self.table = table
        self.path = getattr(table, "path", None)
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
        self._thread = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def _db(self) -> sqlite3.Connection:
        """The SQLite connection (tests make the embedded store read-only through it)."""
        return self.table._db  # type: ignore[attr-defined,no-any-return]

    def health(self) -> dict[str, Any]:
        """For `/healthz`: the store's backend and whether rows are being written."""
        return {**self.table.health(), "writing": self.healthy, **({"last_error": self.last_error} if not self.healthy else {})}

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
        if self.table.remote:  # a shared store that cannot be reached (down, a wrong password) shows at once in
            try:  # /healthz, not on the first call (outside review, cluster round 12: "ok" until traffic failed)
                self.table.ping()
            except StoreUnavailable as exc:
                self._fail(str(exc))
        while True:
            woken = self._wake.wait(None if self.healthy or not self.table.remote else PROBE_INTERVAL_S)
            if not woken and not self._closing:
                self._probe()
                continue
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
            if self._digest_key is None:
                self._digest_key = self.table.digest_key()
            self.table.audit_insert([self._row(event) for event in batch])
        except StoreUnavailable as exc:
            # The batch is dropped, not retried: a retry after an unknown commit could store a
            # call twice. The calls it held were let through under `audit.on_failure`.
            self._fail(f"{exc} ({len(batch)} row(s) not written)")
            return
        self._ok()

    def _probe(self) -> None:
        try:
            self.table.ping()
        except StoreUnavailable as exc:
            self.last_error = str(exc)
            return
        self._ok()

    def _ok(self) -> None:
        if not self.healthy:
            logger.warning("audit store is writable again")
        self.healthy, self.last_error = True, None

    def _row(self, event: AuditEvent) -> tuple[Any, ...]:
        assert self._digest_key is not None
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
    table: AuditTable | None = None,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """Newest-last audit rows matching the filters: from `table` (PostgreSQL) when given, else the
    data dir's SQLite file (read-only connection)."""
    flt = AuditFilter(principal, tool, since, outcome, limit, request_id=request_id)
    if table is not None:
        return table.audit_query(flt)
    from hub.store.sqlite import query_file

    return query_file(data_dir / "audit.sqlite", flt)


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
