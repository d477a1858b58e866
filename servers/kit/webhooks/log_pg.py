"""The event log in PostgreSQL, for replicas that share the hub's store (`hub.store.url`, or
`$MCP_HUB_STORE_URL`): the same states and rules as the SQLite `EventLog` (dedupe by namespace,
provider and delivery id, leased claims, retries, dead letter, replay, retention), one
`webhook_events` table for every domain and namespace (`domain` and `namespace` columns), so any
replica's intake, processor and `mcp-hub events` see the same rows, and a namespace's processor
claims that namespace's rows only (two tenants of one domain never process each other's).

Rules decided here:
- A delivery is acknowledged once its INSERT committed (autocommit, PostgreSQL's default
  `synchronous_commit`): a restart of any replica, or of PostgreSQL, loses no accepted event.
- Claims take rows `FOR UPDATE SKIP LOCKED` and move their `next_attempt_at` past a lease in the same
  statement, so two processors (replicas, or a hub and a standalone server) never take one event at
  once; a processor that dies mid-attempt leaves it to whoever finds it due when the lease ends.
- Event ids (`seq`) are unique across domains (one sequence); `replay ID --domain D` checks the domain.
- Migration 2 keys rows by namespace: rows from before it get their domain's name as namespace (the
  hub's default config names each builtin's namespace so). Replicas must all run the new code: an
  old one's INSERT no longer matches the table's unique key.
- A delivery waits at most `RECORD_WAIT_S` for a connection, `DOWN_WAIT_S` while the log has just
  failed (PostgreSQL down): the intake answers 503 + Retry-After at once instead of hanging.
- Migrations are versioned in `mcp_hub_event_migrations` under an advisory lock (replicas starting
  together apply each once) and run before the first query of each process.
- `stats_now` (a Prometheus scrape cannot await) answers from the last snapshot and refreshes it
  in a thread, so a scrape never waits on the network: its figures may be one scrape old. The refresh
  reads pending and dead rows only (by the age index), never the processed history.
- Rows are trimmed as in the SQLite log (`log.keep_limits`: processed rows past
  `<DOMAIN>_EVENTS_KEEP_DAYS` or beyond the newest `<DOMAIN>_EVENTS_KEEP_ROWS` of a namespace are
  deleted, with their retry keys; pending, failed and dead rows stay), `TRIM_BATCH` per statement. As
  there, the age limits apply to every namespace of the domain (one no longer configured too), the row
  limit to the log's own namespace (the SQL: `pg_retention`).
- Push-channel state stays in the domain's local SQLite file (`local`), beside the data dir.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from hub.store.pool_revival import PoolRevival, retire
from hub.store.postgres import apply_migrations, describe
from servers.kit.store import Store
from servers.kit.webhooks.log_rules import ALL, LEASE_S, EventRow, State, keep_limits
from servers.kit.webhooks.pg_retention import purge_payloads, trim_processed
from servers.kit.webhooks.pg_schema import MIGRATIONS

logger = logging.getLogger("servers.webhooks")
T = TypeVar("T")
_LOCK_ID = 0x6D63_7068_6576  # "mcphev": serialises the event-log migrations across replicas
_PENDING = "state IN ('received', 'failed')"
_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()
_migrated: set[tuple[str, str]] = set()
_revivals: dict[str, PoolRevival] = {}
_down_since: dict[str, float] = {}
"""URL -> when a query on it last failed for want of a connection (cleared by the next success)."""
RECORD_WAIT_S = 2.0
DOWN_WAIT_S = 0.25
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def _pool(url: str, fresh: bool = False) -> ConnectionPool:
    """One small pool per URL per process, shared by every domain's log; `fresh`: a new one in its place
    (the database answers again while the old one waits in its reconnection backoff)."""
    with _pools_lock:
        if url not in _pools or fresh:
            pool = ConnectionPool(url, min_size=1, max_size=4, open=False, timeout=5.0, name="mcp-hub-events",
                                  check=ConnectionPool.check_connection,
                                  kwargs={"autocommit": True, "connect_timeout": 5, "row_factory": dict_row,
                                          "options": "-c statement_timeout=30000"})  # no query hangs a processor
            pool.open(wait=False)
            if not _pools:
                atexit.register(close_pools)
            if url in _pools:
                retire(_pools[url])
            _pools[url] = pool
            _revivals.setdefault(url, PoolRevival(url, {"autocommit": True, "connect_timeout": 2}))
        return _pools[url]


def close_pools() -> None:
    """Close every pool this process opened (at exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
        _migrated.clear()
        _down_since.clear()
        _revivals.clear()
    for pool in pools:
        pool.close(timeout=2)


Migrations = tuple[list[str], str, int]
"""(scripts, the table recording them, the advisory lock serialising them across replicas)."""
EVENT_MIGRATIONS: Migrations = (MIGRATIONS, "mcp_hub_event_migrations", _LOCK_ID)


def _migrate(url: str, conn: psycopg.Connection[Any], migrations: Migrations) -> None:
    scripts, table, lock_id = migrations
    with _pools_lock:
        if (url, table) not in _migrated:
            apply_migrations(conn, scripts, table, lock_id)
            _migrated.add((url, table))


def run_sync(url: str, migrations: Migrations, work: Callable[[psycopg.Connection[Any]], T], wait: float | None = None) -> T:
    """`work(conn)` on a connection of this process's pool for `url` (autocommit, dict rows), once
    `migrations` are applied; a database that answers again gets a fresh pool. Shared by every store
    of the kit on the hub's PostgreSQL (event logs, idempotency records)."""
    pool = _pool(url)
    if url in _down_since and _revivals[url].answers_again():
        pool = _pool(url, fresh=True)
    try:
        try:
            result = _on(pool, url, migrations, work, wait)
        except _Retired:
            # Another thread swapped a fresh pool in (the database answers again) and retired the one this
            # call had taken, before it lent a connection: not an outage, so the fresh pool serves the call
            # (outside review, cluster round 18: a webhook processor logged "cannot read or settle its event
            # log (PoolClosed)" right after a recovery).
            result = _on(_pool(url), url, migrations, work, wait)
    except _Retired as exc:
        _down_since.setdefault(url, time.time())
        raise exc.closed from None
    except _UNREACHABLE:
        _down_since.setdefault(url, time.time())
        raise
    _down_since.pop(url, None)
    return result


class _Retired(Exception):
    """The pool a call took was closed before it lent a connection (`closed`: the pool's own error)."""

    def __init__(self, closed: PoolClosed) -> None:
        super().__init__(str(closed))
        self.closed = closed


def _on(pool: ConnectionPool, url: str, migrations: Migrations, work: Callable[[psycopg.Connection[Any]], T],
        wait: float | None) -> T:
    """`work` on a connection of `pool`; a pool already closed is `_Retired` (nothing ran, so it may be retried)."""
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(pool.connection(timeout=wait))
        except PoolClosed as exc:
            raise _Retired(exc) from exc
        _migrate(url, conn, migrations)
        return work(conn)


def is_down(url: str) -> bool:
    """Whether the last query on `url` failed for want of a connection (no success since)."""
    return url in _down_since


def _row(r: dict[str, Any]) -> EventRow:
    return EventRow(seq=r["seq"], namespace=r["namespace"], provider=r["provider"], delivery_id=r["delivery_id"], state=r["state"],
                    attempts=r["attempts"], received_at=r["received_at"], next_attempt_at=r["next_attempt_at"],
                    processed_at=r["processed_at"], last_error=r["last_error"], duplicates=r["duplicates"],
                    purged=r["payload"] is None)


class PgEventLog:
    """`EventLog`'s interface over one namespace's rows of the shared PostgreSQL table."""

    def __init__(self, url: str, domain: str, local: Store | None = None, namespace: str | None = None) -> None:
        """`namespace` defaults to `domain`; `log.ALL` reads every namespace of the domain (and records none)."""
        self.url, self.domain, self.name = url, domain, describe(url)
        self.namespace = namespace or domain
        self.store = local
        """The domain's local SQLite file, for state that stays per machine (push channels)."""
        self._stats: dict[str, dict[str, float]] = {}
        self._stats_at = 0.0
        self._refreshing = threading.Lock()
        self.keep_s, self.keep_rows = keep_limits(domain)

    def _own(self) -> tuple[str, str]:
        if self.namespace == ALL:
            raise ValueError("a log of every namespace takes and claims no deliveries")
        return self.domain, self.namespace

    def _mine(self) -> tuple[str, list[Any]]:
        """The WHERE condition selecting this log's rows (its domain's, of its namespace unless `ALL`)."""
        if self.namespace == ALL:
            return "domain = %s", [self.domain]
        return "domain = %s AND namespace = %s", [self.domain, self.namespace]

    def _sync(self, work: Callable[[psycopg.Connection[Any]], T], wait: float | None = None) -> T:
        return run_sync(self.url, EVENT_MIGRATIONS, work, wait)

    async def _run(self, work: Callable[[psycopg.Connection[Any]], T], wait: float | None = None) -> T:
        return await anyio.to_thread.run_sync(self._sync, work, wait)

    async def record(self, provider: str, delivery_id: str, headers: dict[str, str], payload: bytes,
                     now: float | None = None, alias: str | None = None) -> tuple[int, bool]:
        """Store a delivery; (seq, duplicate). As `EventLog.record`: a delivery whose key or `alias` is
        already logged, or whose key a logged delivery's re-signed retry had, only bumps the duplicate
        counter of the (oldest) row it matches; a retry matched by its alias alone leaves its key behind."""
        at = time.time() if now is None else now
        key = (*self._own(), provider, delivery_id)

        def work(conn: psycopg.Connection[Any]) -> tuple[int, bool]:
            known = conn.execute("SELECT seq FROM webhook_retry_keys WHERE domain = %s AND namespace = %s"
                                 " AND provider = %s AND delivery_id = %s", key).fetchone()
            if known is None:
                row = conn.execute(
                    "INSERT INTO webhook_events (domain, namespace, provider, delivery_id, alias, received_at,"
                    " next_attempt_at, headers, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING seq", (*key, alias, at, at, json.dumps(headers), payload)).fetchone()
                if row is not None:
                    return int(row["seq"]), False
                row = conn.execute(
                    "SELECT seq, delivery_id FROM webhook_events WHERE domain = %s AND namespace = %s AND provider = %s"
                    " AND (delivery_id = %s OR alias = %s) ORDER BY seq LIMIT 1", (*key, alias)).fetchone()
                if row is None:  # the row it conflicted with was trimmed meanwhile: a retry of the provider's is new
                    raise psycopg.errors.SerializationFailure("the matching delivery was deleted meanwhile; retry")
                if row["delivery_id"] != delivery_id:
                    conn.execute("INSERT INTO webhook_retry_keys VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                 (*key, row["seq"]))
                known = row
            conn.execute("UPDATE webhook_events SET duplicates = duplicates + 1 WHERE seq = %s", (known["seq"],))
            return int(known["seq"]), True

        return await self._run(work, DOWN_WAIT_S if self.url in _down_since else RECORD_WAIT_S)

    async def due(self, now: float, limit: int = 50, lease_s: float = LEASE_S) -> list[dict[str, Any]]:
        """Claim the pending deliveries due now, oldest first, each leased for `lease_s` (see the module)."""

        key = self._own()

        def work(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            rows = conn.execute(
                "WITH picked AS (SELECT seq, next_attempt_at FROM webhook_events WHERE domain = %s AND namespace = %s"
                f" AND {_PENDING} AND next_attempt_at <= %s ORDER BY next_attempt_at, seq LIMIT %s FOR UPDATE SKIP LOCKED)"
                " UPDATE webhook_events e SET next_attempt_at = %s FROM picked WHERE e.seq = picked.seq"
                " RETURNING e.seq, e.provider, e.delivery_id, e.attempts, e.headers, e.payload, picked.next_attempt_at AS due_at",
                (*key, now, limit, now + lease_s)).fetchall()
            rows.sort(key=lambda r: (r["due_at"], r["seq"]))
            return [{k: v for k, v in r.items() if k != "due_at"} | {"headers": json.loads(r["headers"]),
                                                                      "payload": bytes(r["payload"]) if r["payload"] is not None else None}
                    for r in rows]

        return await self._run(work)

    async def next_due_at(self) -> float | None:
        key = self._own()

        def work(conn: psycopg.Connection[Any]) -> float | None:
            row = conn.execute("SELECT MIN(next_attempt_at) AS at FROM webhook_events WHERE domain = %s AND namespace = %s"
                               f" AND {_PENDING}", key).fetchone()
            return row["at"] if row else None

        return await self._run(work)

    async def settle(self, seq: int, *, error: str | None, next_at: float | None, dead: bool, now: float,
                     attempted: bool = True) -> None:
        """Mark one attempt's outcome: processed (error None), failed (retry at next_at) or dead. With
        `attempted` False (a transient failure: `processor.transient`) the attempt is not counted."""
        counted = "attempts + 1" if attempted else "attempts"

        mine, args = self._mine()

        def work(conn: psycopg.Connection[Any]) -> None:
            if error is None:
                conn.execute("UPDATE webhook_events SET state = 'processed', attempts = attempts + 1, processed_at = %s,"
                             f" last_error = NULL WHERE seq = %s AND {mine}", (now, seq, *args))
            else:
                conn.execute(f"UPDATE webhook_events SET state = %s, attempts = {counted}, last_error = %s,"
                             f" next_attempt_at = %s WHERE seq = %s AND {mine}",
                             ("dead" if dead else "failed", error[:300], next_at or now, seq, *args))

        await self._run(work)

    async def list(self, state: State | None = None, limit: int = 50) -> list[EventRow]:
        mine, args = self._mine()
        if state:
            mine, args = f"{mine} AND state = %s", [*args, state]

        def work(conn: psycopg.Connection[Any]) -> list[EventRow]:
            rows = conn.execute(f"SELECT * FROM webhook_events WHERE {mine} ORDER BY seq DESC LIMIT %s",  # type: ignore[arg-type]
                                [*args, limit]).fetchall()
            return [_row(r) for r in rows]

        return await self._run(work)

    async def replay(self, seq: int, now: float | None = None) -> EventRow | None:
        """Queue a delivery for one more round of attempts; None if this domain (namespace) has no such
        event. Refused (ValueError) when its payload was already purged."""
        at = time.time() if now is None else now
        mine, args = self._mine()

        def work(conn: psycopg.Connection[Any]) -> EventRow | None:
            with conn.transaction():
                row = conn.execute(f"SELECT * FROM webhook_events WHERE seq = %s AND {mine} FOR UPDATE",  # type: ignore[arg-type]
                                   (seq, *args)).fetchone()
                if row is None:
                    return None
                if row["payload"] is None:
                    raise ValueError(f"event {seq} can no longer be replayed: its payload was purged by retention")
                updated = conn.execute("UPDATE webhook_events SET state = 'received', attempts = 0, next_attempt_at = %s,"
                                       " last_error = NULL WHERE seq = %s RETURNING *", (at, seq)).fetchone()
                return _row(updated) if updated else None

        return await self._run(work)

    async def purge(self, older_than: float, now: float | None = None) -> int:
        """Drop the payload (personal data) of settled deliveries received before `older_than`, of every
        namespace of the domain (as `EventLog.purge`), then trim processed rows (`trim`); the number of
        payloads dropped."""
        purged = await self._run(functools.partial(purge_payloads, domain=self.domain, older_than=older_than))
        await self.trim((time.time() if now is None else now) - self.keep_s)
        return purged

    async def trim(self, older_than: float) -> int:
        """Delete processed rows received before `older_than` (of every namespace of the domain) and the
        oldest beyond the newest `keep_rows` of this log's namespace (of each, for `ALL`), with their
        retry keys, `TRIM_BATCH` per statement; the number deleted. Pending, failed and dead rows stay."""
        total = await self._run(functools.partial(trim_processed, domain=self.domain, namespace=self.namespace,
                                                  keep_rows=self.keep_rows, older_than=older_than))
        if total:
            logger.info("deleted %d processed webhook events past their row retention", total)
        return total

    def stats_now(self, now: float) -> dict[str, dict[str, float]]:
        """Per provider: `dead_lettered`, `pending`, `lag_s` — the last snapshot, refreshed in a
        thread when older than a second (see the module)."""
        if now - self._stats_at >= 1.0 and self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._refresh_stats, name="mcp-hub-event-stats", daemon=True).start()
        return self._stats

    def _refresh_stats(self) -> None:
        mine, args = self._mine()
        try:
            rows = self._sync(lambda c: c.execute(  # pending and dead rows only (the age index), not the history
                "SELECT provider, COUNT(*) FILTER (WHERE state = 'dead') AS dead,"  # type: ignore[arg-type]
                f" COUNT(*) FILTER (WHERE {_PENDING}) AS pending, MIN(received_at) FILTER (WHERE {_PENDING}) AS oldest"
                f" FROM webhook_events WHERE {mine} AND state IN ('received', 'failed', 'dead') GROUP BY provider",
                args).fetchall())
            now = time.time()
            self._stats = {r["provider"]: {"dead_lettered": int(r["dead"]), "pending": int(r["pending"]),
                                           "lag_s": round(max(0.0, now - r["oldest"]), 3) if r["oldest"] is not None else 0.0}
                           for r in rows}
            self._stats_at = now
        except Exception as exc:  # noqa: BLE001 — the scrape keeps the last figures
            logger.warning("webhook stats from %s unavailable: %s", self.name, type(exc).__name__)
        finally:
            self._refreshing.release()

    async def counts(self) -> dict[str, int]:
        mine, args = self._mine()

        def work(conn: psycopg.Connection[Any]) -> dict[str, int]:
            rows = conn.execute(f"SELECT state, COUNT(*) AS n, SUM(duplicates) AS d FROM webhook_events WHERE {mine}"  # type: ignore[arg-type]
                                " GROUP BY state", args).fetchall()
            out = {r["state"]: int(r["n"]) for r in rows}
            out["duplicates"] = sum(int(r["d"] or 0) for r in rows)
            oldest = conn.execute(f"SELECT MIN(received_at) AS at FROM webhook_events WHERE {mine} AND {_PENDING}",  # type: ignore[arg-type]
                                  args).fetchone()
            at = oldest["at"] if oldest else None
            out["lag_s"] = round(max(0.0, time.time() - at), 3) if at is not None else 0  # type: ignore[assignment]
            return out

        return await self._run(work)
