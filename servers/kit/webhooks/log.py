"""The durable event log of one domain: every verified delivery, deduplicated by (namespace,
provider, delivery id), with its processing state. Each row belongs to one namespace (the hub
namespace whose route took it; a domain server on its own uses its domain's name): a log claims,
lists and settles its own namespace's rows only, so two namespaces of one domain sharing a data dir
(or the PostgreSQL store, `log_pg`) never process each other's deliveries.

States: `received` (waiting to be processed, `next_attempt_at` says when), `processed`, `failed`
(an attempt failed; retried at `next_attempt_at`), `dead` (failed `max_attempts` times: the
dead-letter queue, left alone until `replay`). The file is `<data dir>/<domain>-events.sqlite`, opened
with `synchronous=FULL` so an acknowledged delivery survives a crash. Payloads are purged (set to NULL,
the row kept) once older than the retention period and no longer pending.

Rows are bounded (decided here, outside review events round 18): a *processed* delivery's row is
deleted once older than `<DOMAIN>_EVENTS_KEEP_DAYS` (default 90) or beyond the newest
`<DOMAIN>_EVENTS_KEEP_ROWS` processed rows of its namespace (default 1,000,000), at the processor's
hourly purge — a row's only later use is dedupe, and no provider retries a delivery that late. Pending,
failed and dead rows are never deleted (a dead letter waits to be handled). The age limits (payloads
and processed rows) are the domain's, so a log's purge applies them to every namespace in its file,
also one no longer configured, whose rows nobody else would purge (events round 28: a removed tenant's
personal data stayed for ever); the row limit only to its own namespace's rows. Per (namespace, provider,
state) counts are kept by triggers (`webhook_counts`) and the oldest pending row is found by index,
so `stats_now` (a metrics scrape, on the event loop) costs the same with ten rows or ten million.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, cast

from servers.kit.store import Store
from servers.kit.webhooks.log_rules import ALL, KEEP_DAYS, KEEP_ROWS, LEASE_S, TRIM_BATCH, EventRow, State, keep_limits
from servers.kit.webhooks.log_schema import _migrations

__all__ = ["ALL", "KEEP_DAYS", "KEEP_ROWS", "LEASE_S", "STORE_URL_ENV", "TRIM_BATCH", "EventLog", "EventRow", "State",
           "events_path", "keep_limits", "open_event_log", "shared_store_url"]

logger = logging.getLogger("servers.webhooks")
STORE_URL_ENV = "MCP_HUB_STORE_URL"  # the hub's fallback for hub.store.url (hub/store/__init__.py)


def events_path(data_dir: Path, domain: str) -> Path:
    return data_dir / f"{domain}-events.sqlite"


def domain_of(path: Path) -> str:
    """The domain an events file belongs to (`<domain>-events.sqlite`)."""
    return path.name.removesuffix(".sqlite").removesuffix("-events")


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
    return EventRow(seq=r["seq"], namespace=r["namespace"], provider=r["provider"], delivery_id=r["delivery_id"], state=r["state"],
                    attempts=r["attempts"], received_at=r["received_at"], next_attempt_at=r["next_attempt_at"],
                    processed_at=r["processed_at"], last_error=r["last_error"], duplicates=r["duplicates"],
                    purged=r["payload"] is None)


class EventLog:
    """Record, claim and settle one namespace's deliveries; list, replay and purge them."""

    def __init__(self, path: Path, namespace: str | None = None) -> None:
        """`namespace` defaults to the file's domain; `ALL` reads every namespace (and records none)."""
        domain = domain_of(path)
        self.store = Store(path, _migrations(domain))
        self.store._db.execute("PRAGMA synchronous=FULL")  # noqa: SLF001 — an ack promises the row is on disk
        self.namespace = namespace or domain
        self.keep_s, self.keep_rows = keep_limits(domain)

    def _own(self) -> str:
        if self.namespace == ALL:
            raise ValueError("a log of every namespace takes and claims no deliveries")
        return self.namespace

    def _mine(self) -> tuple[str, list[Any]]:
        """The WHERE condition selecting this log's namespace (every one for `ALL`)."""
        return ("1 = 1", []) if self.namespace == ALL else ("namespace = ?", [self.namespace])

    async def record(self, provider: str, delivery_id: str, headers: dict[str, str], payload: bytes,
                     now: float | None = None, alias: str | None = None) -> tuple[int, bool]:
        """Store a delivery; (seq, duplicate). A delivery whose key or `alias` (a second key: a retry id
        with the body, `normalize.delivery_alias`) is already logged, or whose key a logged delivery's
        re-signed retry had, is a duplicate: it only bumps the duplicate counter of the row it matches
        (the oldest, if it matches two). A retry matched by its alias alone leaves its key behind."""
        at = time.time() if now is None else now
        key = (self._own(), provider, delivery_id)

        def work(db: sqlite3.Connection) -> tuple[int, bool]:
            known = db.execute("SELECT seq FROM webhook_retry_keys WHERE namespace = ? AND provider = ?"
                               " AND delivery_id = ?", key).fetchone()
            if known is None:
                cur = db.execute(
                    "INSERT OR IGNORE INTO webhook_events (namespace, provider, delivery_id, alias, received_at,"
                    " next_attempt_at, headers, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, alias, at, at, json.dumps(headers), payload))
                if cur.rowcount:
                    return int(cur.lastrowid or 0), False
                seq, first_key = db.execute(
                    "SELECT seq, delivery_id FROM webhook_events WHERE namespace = ? AND provider = ?"
                    " AND (delivery_id = ? OR alias = ?) ORDER BY seq LIMIT 1", (*key, alias)).fetchone()
                if first_key != delivery_id:
                    db.execute("INSERT OR IGNORE INTO webhook_retry_keys VALUES (?, ?, ?, ?)", (*key, seq))
            else:
                seq = known[0]
            db.execute("UPDATE webhook_events SET duplicates = duplicates + 1 WHERE seq = ?", (seq,))
            return int(seq), True

        return await self.store.run(work)

    async def due(self, now: float, limit: int = 50, lease_s: float = LEASE_S) -> list[dict[str, Any]]:
        """Claim the pending deliveries whose time has come, oldest first, with their payload. Each is
        leased for `lease_s` (its next_attempt_at moves on), so a second processor on the same file
        (the hub and a standalone server sharing a data dir) does not take it too; if this process
        dies mid-attempt, the delivery is due again when the lease ends."""

        namespace = self._own()

        def work(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT seq, provider, delivery_id, attempts, headers, payload FROM webhook_events WHERE namespace = ?"
                " AND state IN ('received', 'failed') AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
                (namespace, now, limit)).fetchall()
            db.executemany("UPDATE webhook_events SET next_attempt_at = ? WHERE seq = ?", [(now + lease_s, r["seq"]) for r in rows])
            return [dict(r) | {"headers": json.loads(r["headers"])} for r in rows]

        return await self.store.run(work)

    async def next_due_at(self) -> float | None:
        namespace = self._own()

        def work(db: sqlite3.Connection) -> float | None:
            return cast("float | None", db.execute("SELECT MIN(next_attempt_at) FROM webhook_events WHERE namespace = ?"
                                                   " AND state IN ('received', 'failed')", (namespace,)).fetchone()[0])

        return await self.store.run(work)

    async def settle(self, seq: int, *, error: str | None, next_at: float | None, dead: bool, now: float,
                     attempted: bool = True) -> None:
        """Mark one attempt's outcome: processed (error None), failed (retry at next_at) or dead. With
        `attempted` False (a transient failure: `processor.transient`) the attempt is not counted."""
        counted = "attempts + 1" if attempted else "attempts"

        def work(db: sqlite3.Connection) -> None:
            if error is None:
                db.execute("UPDATE webhook_events SET state = 'processed', attempts = attempts + 1, processed_at = ?,"
                           " last_error = NULL WHERE seq = ?", (now, seq))
            else:
                db.execute(f"UPDATE webhook_events SET state = ?, attempts = {counted}, last_error = ?,"
                           " next_attempt_at = ? WHERE seq = ?", ("dead" if dead else "failed", error[:300], next_at or now, seq))

        await self.store.run(work)

    async def list(self, state: State | None = None, limit: int = 50) -> list[EventRow]:
        mine, args = self._mine()
        if state:
            mine, args = f"{mine} AND state = ?", [*args, state]

        def work(db: sqlite3.Connection) -> list[EventRow]:
            rows = db.execute(f"SELECT * FROM webhook_events WHERE {mine} ORDER BY seq DESC LIMIT ?", [*args, limit]).fetchall()
            return [_row(r) for r in rows]

        return await self.store.run(work)

    async def replay(self, seq: int, now: float | None = None) -> EventRow | None:
        """Queue a dead (or failed/processed) delivery for one more round of attempts; None if unknown
        (or another namespace's). Refused (ValueError) when its payload was already purged."""
        at = time.time() if now is None else now
        mine, args = self._mine()

        def work(db: sqlite3.Connection) -> EventRow | None:
            row = db.execute(f"SELECT * FROM webhook_events WHERE seq = ? AND {mine}", (seq, *args)).fetchone()
            if row is None:
                return None
            if row["payload"] is None:
                raise ValueError(f"event {seq} can no longer be replayed: its payload was purged by retention")
            db.execute("UPDATE webhook_events SET state = 'received', attempts = 0, next_attempt_at = ?, last_error = NULL"
                       " WHERE seq = ?", (at, seq))
            return _row(db.execute("SELECT * FROM webhook_events WHERE seq = ?", (seq,)).fetchone())

        return await self.store.run(work)

    async def purge(self, older_than: float, now: float | None = None) -> int:
        """Drop the payload (personal data) of settled deliveries received before `older_than`, of every
        namespace in the file (the age limits are the domain's: see the module), then trim processed rows
        past `keep_s` / `keep_rows` (`trim`); the number of payloads dropped."""

        def work(db: sqlite3.Connection, namespace: str) -> int:
            return db.execute("UPDATE webhook_events SET payload = NULL, headers = '{}' WHERE namespace = ? AND received_at < ?"
                              " AND state IN ('processed', 'dead') AND payload IS NOT NULL", (namespace, older_than)).rowcount

        purged = 0
        for namespace in await self._namespaces(("processed", "dead")):  # one transaction each, by the age index
            purged += await self.store.run(lambda db, namespace=namespace: work(db, namespace))
        await self.trim((time.time() if now is None else now) - self.keep_s)
        await self.store.forget_freed()  # at every purge: one a reader held open is emptied the next time (review atk53b N1)
        return purged

    async def trim(self, older_than: float) -> int:
        """Delete processed rows received before `older_than` (of every namespace in the file), and the
        oldest beyond the newest `keep_rows` of this log's namespace (of each, for `ALL`), `TRIM_BATCH`
        per transaction (by index: the cost is the rows deleted); the number deleted. Pending, failed and
        dead rows stay."""
        total = 0
        for namespace in await self._namespaces(("processed",)):
            rows = self.keep_rows if self.namespace in (ALL, namespace) else None  # another's: its own log's limit

            def work(db: sqlite3.Connection, namespace: str = namespace, rows: int | None = rows) -> int:
                (kept,) = db.execute("SELECT COALESCE(SUM(n), 0) FROM webhook_counts WHERE namespace = ? AND state = 'processed'",
                                     (namespace,)).fetchone()
                over = 0 if rows is None else min(TRIM_BATCH, max(0, int(kept) - rows))
                doomed = db.execute(
                    "SELECT seq FROM webhook_events WHERE namespace = ? AND state = 'processed' AND received_at < ?"
                    " ORDER BY received_at LIMIT ?", (namespace, older_than, TRIM_BATCH)).fetchall()
                if len(doomed) < over:
                    doomed = db.execute("SELECT seq FROM webhook_events WHERE namespace = ? AND state = 'processed'"
                                        " ORDER BY received_at LIMIT ?", (namespace, over)).fetchall()
                db.executemany("DELETE FROM webhook_events WHERE seq = ?", doomed)
                return len(doomed)

            while deleted := await self.store.run(work):
                total += deleted
        if total:
            logger.info("deleted %d processed webhook events past their row retention", total)
        return total

    async def _namespaces(self, states: tuple[str, ...]) -> list[str]:
        """Every namespace with rows in `states` in the file, from the kept counts (a small table, no scan)."""
        marks = ", ".join("?" * len(states))
        rows = await self.store.run(lambda db: db.execute(
            f"SELECT DISTINCT namespace FROM webhook_counts WHERE state IN ({marks}) AND n > 0", states).fetchall())
        return [r[0] for r in rows]

    def stats_now(self, now: float) -> dict[str, dict[str, float]]:
        """Per provider: `dead_lettered`, `pending` and `lag_s`, read synchronously on a short-lived
        read-only connection (a metrics scrape cannot await; WAL readers never block the writer). The
        counts come from `webhook_counts` and the oldest pending row from the age index: a few index
        lookups per provider, whatever the history (outside review events round 18: a full scan of a
        1,000,000-row log held the hub's event loop ~0.3 s per scrape)."""
        path = self.store.path
        if not path.exists():
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            return _stats(db, self._mine(), now)
        except sqlite3.OperationalError:  # a file not yet migrated (an older server wrote it): nothing to show yet
            return {}
        finally:
            db.close()

    async def counts(self) -> dict[str, int]:
        """Rows per state, duplicates and `lag_s`, from the kept counts (no scan of the history)."""
        mine, args = self._mine()

        def work(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute(f"SELECT state, SUM(n), SUM(duplicates) FROM webhook_counts WHERE {mine} GROUP BY state",
                              args).fetchall()
            out = {r[0]: int(r[1]) for r in rows if r[1]}
            out["duplicates"] = sum(int(r[2] or 0) for r in rows)
            oldest = _oldest_pending(db, mine, args)
            out["lag_s"] = round(max(0.0, time.time() - oldest), 3) if oldest is not None else 0  # type: ignore[assignment]
            return out

        return await self.store.run(work)


def _oldest_pending(db: sqlite3.Connection, mine: str, args: list[Any], provider: str | None = None) -> float | None:
    """When the oldest pending delivery was received: one age-index lookup per pending state (and
    namespace); the walk is over pending rows only, never the settled history."""
    where, params = (f"{mine} AND provider = ?", [*args, provider]) if provider is not None else (mine, args)
    found = [db.execute(f"SELECT received_at FROM webhook_events INDEXED BY webhook_events_age WHERE namespace = ?"
                        f" AND state = ? AND {where} ORDER BY received_at LIMIT 1", (namespace, state, *params)).fetchone()
             for namespace, state in db.execute(f"SELECT namespace, state FROM webhook_counts WHERE {where}"
                                                " AND state IN ('received', 'failed') AND n > 0", params).fetchall()]
    return min((f[0] for f in found if f is not None), default=None)


def _stats(db: sqlite3.Connection, selected: tuple[str, list[Any]], now: float) -> dict[str, dict[str, float]]:
    mine, args = selected
    rows = db.execute(f"SELECT provider, SUM(CASE WHEN state = 'dead' THEN n ELSE 0 END),"
                      " SUM(CASE WHEN state IN ('received', 'failed') THEN n ELSE 0 END)"
                      f" FROM webhook_counts WHERE {mine} GROUP BY provider", args).fetchall()
    out: dict[str, dict[str, float]] = {}
    for provider, dead, pending in rows:
        oldest = _oldest_pending(db, mine, args, provider) if pending else None
        out[provider] = {"dead_lettered": int(dead or 0), "pending": int(pending or 0),
                         "lag_s": round(max(0.0, now - oldest), 3) if oldest is not None else 0.0}
    return out
