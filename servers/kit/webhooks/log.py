"""The durable event log of one domain: every verified delivery, deduplicated by (provider,
delivery id), with its processing state.

States: `received` (waiting to be processed, `next_attempt_at` says when), `processed`, `failed`
(an attempt failed; retried at `next_attempt_at`), `dead` (failed `max_attempts` times: the
dead-letter queue, left alone until `replay`). The file is `<data dir>/<domain>-events.sqlite`, opened
with `synchronous=FULL` so an acknowledged delivery survives a crash. Payloads are purged (set to NULL,
the row kept) once older than the retention period and no longer pending.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from servers.kit.store import Store

State = Literal["received", "processed", "failed", "dead"]
LEASE_S = 120.0
STORE_URL_ENV = "MCP_HUB_STORE_URL"  # the hub's fallback for hub.store.url (hub/store/__init__.py)
_MIGRATIONS = [
    """CREATE TABLE webhook_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        provider TEXT NOT NULL, delivery_id TEXT NOT NULL,
        received_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'received',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
        last_error TEXT, processed_at REAL, headers TEXT NOT NULL DEFAULT '{}', payload BLOB,
        duplicates INTEGER NOT NULL DEFAULT 0,
        UNIQUE (provider, delivery_id));
    CREATE INDEX webhook_events_due ON webhook_events (state, next_attempt_at)"""
]


class EventRow(BaseModel):
    """One logged delivery as the CLI shows it (no payload)."""

    seq: int
    provider: str
    delivery_id: str
    state: State
    attempts: int
    received_at: float
    next_attempt_at: float
    processed_at: float | None = None
    last_error: str | None = None
    duplicates: int = 0
    purged: bool = False


def events_path(data_dir: Path, domain: str) -> Path:
    return data_dir / f"{domain}-events.sqlite"


def shared_store_url(url: str | None = None) -> str | None:
    """The PostgreSQL URL the event logs use: `url` (the hub's `hub.store.url`), else
    `$MCP_HUB_STORE_URL`; None means SQLite in the data dir."""
    url = url or os.environ.get(STORE_URL_ENV) or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{STORE_URL_ENV} must be a postgresql:// URL (or unset for SQLite in the data dir)")
    return url


def open_event_log(data_dir: Path, domain: str, url: str | None = None) -> Any:
    """A domain's event log: in the shared PostgreSQL store when one is configured (`shared_store_url`;
    `log_pg.PgEventLog`), else `<data dir>/<domain>-events.sqlite`. Push-channel state stays in that
    SQLite file either way."""
    local = EventLog(events_path(data_dir, domain))
    if (shared := shared_store_url(url)) is None:
        return local
    from servers.kit.webhooks.log_pg import PgEventLog  # psycopg only when PostgreSQL is configured

    return PgEventLog(shared, domain, local.store)


def _row(r: sqlite3.Row) -> EventRow:
    return EventRow(seq=r["seq"], provider=r["provider"], delivery_id=r["delivery_id"], state=r["state"],
                    attempts=r["attempts"], received_at=r["received_at"], next_attempt_at=r["next_attempt_at"],
                    processed_at=r["processed_at"], last_error=r["last_error"], duplicates=r["duplicates"],
                    purged=r["payload"] is None)


class EventLog:
    """Record, claim and settle deliveries; list, replay and purge them."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path, _MIGRATIONS)
        self.store._db.execute("PRAGMA synchronous=FULL")  # noqa: SLF001 — an ack promises the row is on disk

    async def record(self, provider: str, delivery_id: str, headers: dict[str, str], payload: bytes,
                     now: float | None = None) -> tuple[int, bool]:
        """Store a delivery; (seq, duplicate). A duplicate only bumps the duplicate counter."""
        at = time.time() if now is None else now

        def work(db: sqlite3.Connection) -> tuple[int, bool]:
            cur = db.execute(
                "INSERT OR IGNORE INTO webhook_events (provider, delivery_id, received_at, next_attempt_at, headers, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)", (provider, delivery_id, at, at, json.dumps(headers), payload))
            if cur.rowcount:
                return int(cur.lastrowid or 0), False
            db.execute("UPDATE webhook_events SET duplicates = duplicates + 1 WHERE provider = ? AND delivery_id = ?",
                       (provider, delivery_id))
            seq = db.execute("SELECT seq FROM webhook_events WHERE provider = ? AND delivery_id = ?",
                             (provider, delivery_id)).fetchone()[0]
            return int(seq), True

        return await self.store.run(work)

    async def due(self, now: float, limit: int = 50, lease_s: float = LEASE_S) -> list[dict[str, Any]]:
        """Claim the pending deliveries whose time has come, oldest first, with their payload. Each is
        leased for `lease_s` (its next_attempt_at moves on), so a second processor on the same file
        (the hub and a standalone server sharing a data dir) does not take it too; if this process
        dies mid-attempt, the delivery is due again when the lease ends."""

        def work(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT seq, provider, delivery_id, attempts, headers, payload FROM webhook_events"
                " WHERE state IN ('received', 'failed') AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
                (now, limit)).fetchall()
            db.executemany("UPDATE webhook_events SET next_attempt_at = ? WHERE seq = ?", [(now + lease_s, r["seq"]) for r in rows])
            return [dict(r) | {"headers": json.loads(r["headers"])} for r in rows]

        return await self.store.run(work)

    async def next_due_at(self) -> float | None:
        def work(db: sqlite3.Connection) -> float | None:
            return db.execute("SELECT MIN(next_attempt_at) FROM webhook_events WHERE state IN ('received', 'failed')").fetchone()[0]

        return await self.store.run(work)

    async def settle(self, seq: int, *, error: str | None, next_at: float | None, dead: bool, now: float) -> None:
        """Mark one attempt's outcome: processed (error None), failed (retry at next_at) or dead."""

        def work(db: sqlite3.Connection) -> None:
            if error is None:
                db.execute("UPDATE webhook_events SET state = 'processed', attempts = attempts + 1, processed_at = ?,"
                           " last_error = NULL WHERE seq = ?", (now, seq))
            else:
                db.execute("UPDATE webhook_events SET state = ?, attempts = attempts + 1, last_error = ?,"
                           " next_attempt_at = ? WHERE seq = ?", ("dead" if dead else "failed", error[:300], next_at or now, seq))

        await self.store.run(work)

    async def list(self, state: State | None = None, limit: int = 50) -> list[EventRow]:
        def work(db: sqlite3.Connection) -> list[EventRow]:
            where, args = ("WHERE state = ?", [state]) if state else ("", [])
            rows = db.execute(f"SELECT * FROM webhook_events {where} ORDER BY seq DESC LIMIT ?", [*args, limit]).fetchall()
            return [_row(r) for r in rows]

        return await self.store.run(work)

    async def replay(self, seq: int, now: float | None = None) -> EventRow | None:
        """Queue a dead (or failed/processed) delivery for one more round of attempts; None if unknown.
        Refused (ValueError) when its payload was already purged."""
        at = time.time() if now is None else now

        def work(db: sqlite3.Connection) -> EventRow | None:
            row = db.execute("SELECT * FROM webhook_events WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return None
            if row["payload"] is None:
                raise ValueError(f"event {seq} can no longer be replayed: its payload was purged by retention")
            db.execute("UPDATE webhook_events SET state = 'received', attempts = 0, next_attempt_at = ?, last_error = NULL"
                       " WHERE seq = ?", (at, seq))
            return _row(db.execute("SELECT * FROM webhook_events WHERE seq = ?", (seq,)).fetchone())

        return await self.store.run(work)

    async def purge(self, older_than: float) -> int:
        """Drop the payload (personal data) of settled deliveries received before `older_than`."""

        def work(db: sqlite3.Connection) -> int:
            return db.execute("UPDATE webhook_events SET payload = NULL, headers = '{}' WHERE received_at < ?"
                              " AND state IN ('processed', 'dead') AND payload IS NOT NULL", (older_than,)).rowcount

        return await self.store.run(work)

    def stats_now(self, now: float) -> dict[str, dict[str, float]]:
        """Per provider: `dead_lettered`, `pending` and `lag_s`, read synchronously on a short-lived
        read-only connection (a metrics scrape cannot await; WAL readers never block the writer)."""
        path = self.store.path
        if not path.exists():
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = db.execute("SELECT provider, SUM(state = 'dead'), SUM(state IN ('received', 'failed')),"
                              " MIN(CASE WHEN state IN ('received', 'failed') THEN received_at END)"
                              " FROM webhook_events GROUP BY provider").fetchall()
        finally:
            db.close()
        return {p: {"dead_lettered": int(dead or 0), "pending": int(pending or 0),
                    "lag_s": round(max(0.0, now - oldest), 3) if oldest is not None else 0.0}
                for p, dead, pending, oldest in rows}

    async def counts(self) -> dict[str, int]:
        def work(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT state, COUNT(*), SUM(duplicates) FROM webhook_events GROUP BY state").fetchall()
            out = {r[0]: int(r[1]) for r in rows}
            out["duplicates"] = sum(int(r[2] or 0) for r in rows)
            oldest = db.execute("SELECT MIN(received_at) FROM webhook_events WHERE state IN ('received', 'failed')").fetchone()[0]
            out["lag_s"] = round(max(0.0, time.time() - oldest), 3) if oldest is not None else 0  # type: ignore[assignment]
            return out

        return await self.store.run(work)
